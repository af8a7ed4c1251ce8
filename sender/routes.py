"""`POST /v1/sms`, `POST /v1/email` and the health endpoints."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ValidationError

from cartero_common.http import Problem, field_errors
from cartero_common.schemas import QUEUE_EMAIL, QUEUE_SMS, EmailRequest, SmsRequest
from sender.auth import bearer_token
from sender.body import FORM_TYPE, JSON_TYPE, parse_fields
from sender.deps import ClockDep, PublisherDep, SettingsDep, ValidatorDep
from sender.intake import accept

log = logging.getLogger(__name__)
# Declared for the OpenAPI document; `bearer_token` reads and checks the header itself.
_BEARER = HTTPBearer(auto_error=False, scheme_name="CarteroToken", description="A token: app_…, grp_… or usr_…")
router = APIRouter(dependencies=[Depends(_BEARER)])


class Queued(BaseModel):
    id: str
    status: str = "queued"
    queue: str


def _request_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {JSON_TYPE: {"schema": schema}, FORM_TYPE: {"schema": schema}},
        }
    }


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/problem+json": {}}}
    for status, text in {
        401: "No token, or not a valid one (`missing_token`, `invalid_token`, `token_revoked`, `token_expired`).",
        403: "The token may not do this now (`subject_disabled`, `action_forbidden`, `usage_exhausted`).",
        409: "A request with the same Idempotency-Key is still in progress (`idempotency_in_progress`).",
        413: "Body larger than 64 KiB (`payload_too_large`).",
        415: "Neither JSON nor a URL-encoded form (`unsupported_media_type`).",
        422: "Invalid fields, listed in `errors` (`invalid_request`); a reused Idempotency-Key"
        " (`idempotency_key_mismatch`).",
        429: "Monthly quota spent (`monthly_quota_exhausted`); `Retry-After` says when it renews.",
        503: "Validator or broker unavailable (`validator_unavailable`, `broker_unavailable`); nothing was queued.",
    }.items()
}


def _validate(model: type[SmsRequest] | type[EmailRequest], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(
            422, "invalid_request", "The request has invalid fields.", errors=field_errors(exc.errors())
        ) from None


@router.post(
    "/v1/sms",
    status_code=202,
    response_model=Queued,
    openapi_extra=_request_body_doc(SmsRequest),
    responses=_PROBLEMS,
    summary="Queue an SMS",
)
async def send_sms(
    request: Request, publisher: PublisherDep, validator: ValidatorDep, settings: SettingsDep, clock: ClockDep
) -> JSONResponse:
    token = bearer_token(request)
    sms: SmsRequest = _validate(SmsRequest, await parse_fields(request, settings.max_body_bytes))
    return await accept(
        request,
        token=token,
        action="sms.send",
        queue=QUEUE_SMS,
        fields={"mensaje": sms.mensaje, "telefono": sms.telefono},
        settings=settings,
        publisher=publisher,
        validator=validator,
        clock=clock,
    )


@router.post(
    "/v1/email",
    status_code=202,
    response_model=Queued,
    openapi_extra=_request_body_doc(EmailRequest),
    responses=_PROBLEMS,
    summary="Queue an email",
)
async def send_email(
    request: Request, publisher: PublisherDep, validator: ValidatorDep, settings: SettingsDep, clock: ClockDep
) -> JSONResponse:
    token = bearer_token(request)
    email: EmailRequest = _validate(EmailRequest, await parse_fields(request, settings.max_body_bytes))
    return await accept(
        request,
        token=token,
        action="email.send",
        queue=QUEUE_EMAIL,
        fields={"destinatario": email.destinatario, "asunto": email.asunto, "cuerpo": email.cuerpo},
        settings=settings,
        publisher=publisher,
        validator=validator,
        clock=clock,
    )


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(publisher: PublisherDep, validator: ValidatorDep) -> Response:
    broker, checker = await asyncio.gather(publisher.ping(), validator.ping())
    checks = {"broker": "ok" if broker else "unreachable", "validator": "ok" if checker else "unreachable"}
    ready = broker and checker
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )
