"""`POST /v1/sms`, `POST /v1/email`, `GET /v1/messages/{id}` and the health endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from cartero_common.http import Problem, field_errors
from cartero_common.wire import QUEUE_EMAIL, QUEUE_SMS, EmailRequest, SmsRequest
from sender.auth import bearer_token
from sender.batch import BATCH_MAX_MESSAGES, accept_batch
from sender.body import FORM_TYPE, JSON_TYPE, parse_fields
from sender.deps import PublisherDep, ValidatorDep
from sender.intake import accept
from sender.metrics import STATUS_REQUESTS
from sender.status import message_status

log = logging.getLogger(__name__)
router = APIRouter()
# The token scheme is declared for the OpenAPI document only (`app.TOKEN_SCHEME`): `bearer_token`
# reads the header itself, and the routes read the app's wiring off `app.state` directly, since
# every dependency FastAPI solves costs CPU on each request of this hot path (py-spy, make bench).
_SECURITY: list[dict[str, list[str]]] = [{"CarteroToken": []}]


class Queued(BaseModel):
    id: str
    status: str = "queued"
    queue: str


def _request_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {
        "security": _SECURITY,
        "requestBody": {
            "required": True,
            "content": {JSON_TYPE: {"schema": schema}, FORM_TYPE: {"schema": schema}},
        },
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
        429: "Monthly quota spent (`monthly_quota_exhausted`) or over the token's rate limit (`rate_limited`);"
        " `Retry-After` says when it renews.",
        503: "`validator_unavailable` or `broker_unavailable`: nothing was queued, no use was spent."
        " `publish_unconfirmed`: the broker did not confirm in time and may hold the message (its"
        " `id` is in the answer); the use stays counted until it is settled. Retry with the same"
        " Idempotency-Key: the same id is published again and delivered once.",
    }.items()
}


Model = TypeVar("Model", SmsRequest, EmailRequest)


async def _send(
    request: Request, model: type[Model], action: str, queue: str, fields_of: Callable[[Model], dict[str, Any]]
) -> JSONResponse:
    """The token's presence first (401 without one), then the body (bad input spends nothing),
    then `intake.accept`."""
    token = bearer_token(request)
    state = request.app.state
    data = await parse_fields(request, state.settings.max_body_bytes)
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        raise Problem(
            422, "invalid_request", "The request has invalid fields.", errors=field_errors(exc.errors())
        ) from None
    return await accept(
        request,
        token=token,
        action=action,
        queue=queue,
        fields=fields_of(body),
        settings=state.settings,
        publisher=state.publisher,
        validator=state.validator,
        clock=state.clock,
    )


@router.post(
    "/v1/sms",
    status_code=202,
    response_model=Queued,
    openapi_extra=_request_body_doc(SmsRequest),
    responses=_PROBLEMS,
    summary="Queue an SMS",
)
async def send_sms(request: Request) -> JSONResponse:
    return await _send(
        request, SmsRequest, "sms.send", QUEUE_SMS, lambda sms: {"mensaje": sms.mensaje, "telefono": sms.telefono}
    )


@router.post(
    "/v1/email",
    status_code=202,
    response_model=Queued,
    openapi_extra=_request_body_doc(EmailRequest),
    responses=_PROBLEMS,
    summary="Queue an email",
)
async def send_email(request: Request) -> JSONResponse:
    return await _send(
        request,
        EmailRequest,
        "email.send",
        QUEUE_EMAIL,
        lambda email: {"destinatario": email.destinatario, "asunto": email.asunto, "cuerpo": email.cuerpo},
    )


class BatchItem(BaseModel):
    index: int = Field(description="The message's place in the request's `messages`, from 0.")
    id: str | None = Field(default=None, description="The queued message's id.")
    status: str | None = Field(default=None, description="`queued` when it was.")
    queue: str | None = None
    problem: dict[str, Any] | None = Field(
        default=None, description="Why it was not queued: an RFC 9457 problem, as the single route would answer."
    )


class BatchQueued(BaseModel):
    queued: int
    not_queued: int
    results: list[BatchItem]


def _batch_doc(model: type[BaseModel]) -> dict[str, Any]:
    item = model.model_json_schema()
    schema = {
        "type": "object",
        "required": ["messages"],
        "properties": {"messages": {"type": "array", "minItems": 1, "maxItems": BATCH_MAX_MESSAGES, "items": item}},
    }
    return {"security": _SECURITY, "requestBody": {"required": True, "content": {JSON_TYPE: {"schema": schema}}}}


_BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    207: {"description": "Some messages were not queued: each one's `problem` says why.", "model": BatchQueued},
    **{
        status: {"description": text, "content": {"application/problem+json": {}}}
        for status, text in {
            401: "No token, or not a valid one: nothing was queued.",
            413: "Larger than `BATCH_BYTES_PER_MESSAGE` per message it holds (`payload_too_large`).",
            415: "Not JSON (`unsupported_media_type`).",
            422: 'Not `{"messages": [...]}` with 1 to 1000 messages (`invalid_request`), or an Idempotency-Key'
            " (`idempotency_not_supported`).",
        }.items()
    },
}


@router.post(
    "/v1/sms/batch",
    status_code=202,
    response_model=BatchQueued,
    openapi_extra=_batch_doc(SmsRequest),
    responses=_BATCH_RESPONSES,
    summary="Queue up to 1,000 SMS",
)
async def send_sms_batch(request: Request) -> JSONResponse:
    return await accept_batch(
        request,
        model=SmsRequest,
        action="sms.send",
        queue=QUEUE_SMS,
        fields_of=lambda sms: {"mensaje": sms.mensaje, "telefono": sms.telefono},
    )


@router.post(
    "/v1/email/batch",
    status_code=202,
    response_model=BatchQueued,
    openapi_extra=_batch_doc(EmailRequest),
    responses=_BATCH_RESPONSES,
    summary="Queue up to 1,000 emails",
)
async def send_email_batch(request: Request) -> JSONResponse:
    return await accept_batch(
        request,
        model=EmailRequest,
        action="email.send",
        queue=QUEUE_EMAIL,
        fields_of=lambda email: {"destinatario": email.destinatario, "asunto": email.asunto, "cuerpo": email.cuerpo},
    )


class OutcomeDetails(BaseModel):
    """What an outcome says beside its status: on each timeline entry, and on the message for its
    current one."""

    attempt: int | None = None
    next_try_at: str | None = None
    reason: str | None = None
    attempts: int | None = None
    dead_lettered: bool | None = None
    dlq: str | None = None
    provider: str | None = None


class TimelineEntry(OutcomeDetails):
    status: str = Field(description="queued | retrying | sent | failed")
    evento: str = Field(description="The message log's event: enviado, reintento, consumido, fallido, rechazado.")
    at: str = Field(description="When the message log stored it (ISO 8601, UTC).")


class MessageStatus(OutcomeDetails):
    id: str
    queue: str | None
    status: str = Field(description="queued | retrying (`attempt`, `next_try_at`) | sent | failed (`reason`)")
    timeline: list[TimelineEntry]


_STATUS_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/problem+json": {}}}
    for status, text in {
        401: "No token, or not a valid one (`missing_token`, `invalid_token`, `token_revoked`, `token_expired`).",
        403: "The token's owner is disabled (`subject_disabled`).",
        404: "`message_not_found`: no message with this id was sent by a token of this token's owner (an unknown"
        " id and another owner's are answered alike).",
        422: "The id is longer than 200 characters (`invalid_request`).",
        503: "`status_unavailable` (the message log) or `validator_unavailable`: try again after `Retry-After`.",
    }.items()
}


@router.get(
    "/v1/messages/{message_id}",
    response_model=MessageStatus,
    response_model_exclude_none=True,
    responses=_STATUS_PROBLEMS,
    openapi_extra={"security": _SECURITY},
    summary="A message's status and timeline",
)
async def get_message(request: Request, message_id: Annotated[str, Path(min_length=1, max_length=200)]) -> Any:
    try:
        token = bearer_token(request)
    except Problem:
        STATUS_REQUESTS.labels("unauthorized").inc()  # counted like a token the validator refused
        raise
    state = request.app.state
    return await message_status(message_id=message_id, token=token, validator=state.validator, logs=state.logs)


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
