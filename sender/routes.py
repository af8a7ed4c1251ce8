"""`POST /v1/sms`, `POST /v1/email` and the health endpoints."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

from cartero_common.aio_amqp import BrokerUnavailable
from cartero_common.http import Problem, field_errors
from cartero_common.schemas import QUEUE_EMAIL, QUEUE_SMS, EmailRequest, SmsRequest
from sender.body import FORM_TYPE, JSON_TYPE, parse_fields
from sender.deps import ClockDep, PublisherDep, SettingsDep
from sender.publishing import new_message, publish_with_event

log = logging.getLogger(__name__)
router = APIRouter()


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
        413: "Body larger than 64 KiB (`payload_too_large`).",
        415: "Neither JSON nor a URL-encoded form (`unsupported_media_type`).",
        422: "Invalid fields, listed in `errors` (`invalid_request`).",
        503: "The broker did not confirm (`broker_unavailable`); nothing was queued.",
    }.items()
}


def _validate(model: type[SmsRequest] | type[EmailRequest], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(
            422, "invalid_request", "The request has invalid fields.", errors=field_errors(exc.errors())
        ) from None


async def _queue(
    publisher: PublisherDep, *, queue: str, fields: dict[str, Any], settings: SettingsDep, clock: ClockDep
) -> JSONResponse:
    now = clock()
    message = new_message(fields, now=now, timezone=settings.timezone)
    try:
        await publish_with_event(publisher, queue=queue, message=message, now=now)
    except BrokerUnavailable as exc:
        log.warning("publish failed", extra={"id": message["id"], "queue": queue, "error": str(exc)})
        raise Problem(
            503, "broker_unavailable", "The message broker did not confirm the message; nothing was queued."
        ) from None
    log.info("queued", extra={"id": message["id"], "queue": queue})
    return JSONResponse(Queued(id=message["id"], queue=queue).model_dump(), status_code=202)


@router.post(
    "/v1/sms",
    status_code=202,
    response_model=Queued,
    openapi_extra=_request_body_doc(SmsRequest),
    responses=_PROBLEMS,
    summary="Queue an SMS",
)
async def send_sms(request: Request, publisher: PublisherDep, settings: SettingsDep, clock: ClockDep) -> JSONResponse:
    sms: SmsRequest = _validate(SmsRequest, await parse_fields(request, settings.max_body_bytes))
    return await _queue(
        publisher,
        queue=QUEUE_SMS,
        fields={"mensaje": sms.mensaje, "telefono": sms.telefono},
        settings=settings,
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
async def send_email(request: Request, publisher: PublisherDep, settings: SettingsDep, clock: ClockDep) -> JSONResponse:
    email: EmailRequest = _validate(EmailRequest, await parse_fields(request, settings.max_body_bytes))
    return await _queue(
        publisher,
        queue=QUEUE_EMAIL,
        fields={"destinatario": email.destinatario, "asunto": email.asunto, "cuerpo": email.cuerpo},
        settings=settings,
        clock=clock,
    )


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(publisher: PublisherDep) -> Response:
    broker = await publisher.ping()
    checks = {"broker": "ok" if broker else "unreachable"}
    return JSONResponse(
        {"status": "ok" if broker else "unavailable", "checks": checks}, status_code=200 if broker else 503
    )
