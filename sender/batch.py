"""`POST /v1/sms/batch` and `POST /v1/email/batch`: up to `BATCH_MAX_MESSAGES` messages in one
request, each one handled as a request of its own would be.

Every message's fields are validated first: one bad message refuses the batch (422, listing each
bad message's errors by its index), with nothing charged or queued. Then each message is charged
one use and published with its event; the answer lists, in the order sent, each message's id or
its problem (RFC 9457, as the single routes answer it: `usage_exhausted`, `broker_unavailable`…):

- a use is never spent without its message queued: a message the broker certainly did not take
  has its use refunded (`broker_unavailable`); one whose outcome is unknown keeps its use until
  it is settled (`publish_unconfirmed`, with its id), as on the single routes;
- a message is never queued without its use: the use is counted before the publish.

The whole request is refused for what concerns them all: no token, a token that is not valid
(401), a body that is not a batch, a message with bad fields (422), or a body over the size
limit. Otherwise the answer is 202 when every message was queued, 207 when some were not.

Idempotency-Key is refused here (422): a key names one request's one outcome, and a batch has
one per message. A client that needs retry safety sends the messages one by one with keys.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from cartero_common.amqp.publisher import BrokerUnavailable, PublishUnconfirmed
from cartero_common.http import Problem, field_errors, problem_body
from cartero_common.json_input import NotJson, parse_json
from sender.auth import REFUSAL_STATUS, _unauthorized, bearer_token, refusal
from sender.body import JSON_TYPE, media_type, read_limited
from sender.intake import kept_problem
from sender.publishing import new_message, publish_with_event
from sender.validator_client import ValidatorClient, ValidatorUnavailable, Verdict

log = logging.getLogger(__name__)

BATCH_MAX_MESSAGES = 1000
ALL_QUEUED, SOME_NOT = 202, 207
PUBLISH_WINDOW = 128  # messages of one batch in flight at once (two confirms each)


async def _refuse_a_bad_token(validator: ValidatorClient, token: str) -> None:
    try:
        code, _ = await validator.identify(token)
    except ValidatorUnavailable:
        return  # each message's own problem is answer enough
    if REFUSAL_STATUS.get(code) == 401:
        raise _unauthorized(code)


def _item_problem(index: int, problem: Problem) -> dict[str, Any]:
    return {"index": index, "problem": problem_body(problem.status, problem.code, problem.detail, **problem.extra)}


async def read_batch(request: Request, bytes_per_message: int) -> tuple[list[Any], int]:
    """The `messages` list of a JSON body `{"messages": [...]}`, 1 to BATCH_MAX_MESSAGES long.

    The body may be `bytes_per_message` per message it holds: read up to the limit for the
    largest batch; `within_limit` holds it to its own count once its fields are known to be good
    (a batch of ten may not be sixteen megabytes). Returns the messages and the body's size."""
    if media_type(request) != JSON_TYPE:
        raise Problem(415, "unsupported_media_type", f"A batch is sent as {JSON_TYPE}.")
    if request.headers.get("idempotency-key") is not None:
        raise Problem(
            422,
            "idempotency_not_supported",
            "Idempotency-Key is not taken on a batch: send messages one by one to retry them safely.",
        )
    raw = await read_limited(request, BATCH_MAX_MESSAGES * bytes_per_message)
    try:
        data = parse_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Problem(422, "invalid_request", "The body is not valid UTF-8.") from None
    except NotJson as exc:
        raise Problem(422, "invalid_request", f"The body is not valid JSON: {exc}.") from None
    messages = data.get("messages") if isinstance(data, dict) else None
    if not isinstance(messages, list) or not 1 <= len(messages) <= BATCH_MAX_MESSAGES:
        raise Problem(
            422,
            "invalid_request",
            f'The body must be {{"messages": [...]}} with 1 to {BATCH_MAX_MESSAGES} messages.',
            errors=[{"field": "messages", "message": f"a list of 1 to {BATCH_MAX_MESSAGES} messages"}],
        )
    return messages, len(raw)


def within_limit(size: int, count: int, bytes_per_message: int) -> None:
    if size > count * bytes_per_message:
        limit = count * bytes_per_message
        raise Problem(
            413,
            "payload_too_large",
            f"{count} messages may take at most {limit} bytes ({bytes_per_message} each).",
        )


async def accept_batch(
    request: Request, *, model: type[BaseModel], action: str, queue: str, fields_of: Any
) -> JSONResponse:
    token = bearer_token(request)
    state = request.app.state
    settings, publisher, validator, clock = state.settings, state.publisher, state.validator, state.clock
    messages, size = await read_batch(request, settings.batch_bytes_per_message)
    background: set[asyncio.Task[None]] = state.background
    client_ip = request.client.host if request.client else None
    now = clock()

    # 1. Every message's fields, before anything is charged: one bad message refuses the whole
    # batch (422, each bad message's errors listed under its index), so bad input never leaves a
    # batch half queued.
    fields: dict[int, dict[str, Any]] = {}
    errors: list[dict[str, str]] = []
    for index, data in enumerate(messages):
        if not isinstance(data, dict):
            errors.append({"field": f"messages.{index}", "message": "must be a JSON object"})
            continue
        try:
            fields[index] = fields_of(model.model_validate(data))
        except ValidationError as exc:
            errors.extend(
                {"field": f"messages.{index}.{error['field']}", "message": error["message"]}
                for error in field_errors(exc.errors())
            )
    if errors:
        # A token that is not valid is told so first, as on every route (`identify` spends nothing).
        await _refuse_a_bad_token(validator, token)
        raise Problem(
            422, "invalid_request", f"{len(messages) - len(fields)} of the messages have invalid fields.", errors=errors
        )
    within_limit(size, len(messages), settings.batch_bytes_per_message)
    problems: dict[int, Problem] = {}
    # 2. One use per message with good fields, asked in chunks.
    created = {index: new_message(found, now=now, timezone=settings.timezone) for index, found in fields.items()}
    checks = [
        {"token": token, "action": action, "request_id": message["id"], "client_ip": client_ip}
        for message in created.values()
    ]
    verdicts = dict(zip(created, await validator.validate_all(checks), strict=True))

    # 3. Each allowed message published with its event, PUBLISH_WINDOW at a time: their confirms
    # overlap, and each publish's timeout runs from its own start (a thousand started at once
    # would wait on each other's frames inside their timeouts).
    window = asyncio.Semaphore(PUBLISH_WINDOW)

    async def publish(index: int, message: dict[str, Any], verdict: Verdict) -> None:
        async with window:
            await publish_one(index, message, verdict)

    async def publish_one(index: int, message: dict[str, Any], verdict: Verdict) -> None:
        token_fields = {
            "token_id": verdict.token_id,
            "token_kind": verdict.kind,
            "token_prefix": verdict.prefix,
            "owner_ref": verdict.owner_ref,
        }
        try:
            await publish_with_event(
                publisher, queue=queue, message=message, now=now, event_extra=token_fields, background=background
            )
        except BrokerUnavailable as exc:
            refunded = await validator.refund(verdict.usage_id) if verdict.usage_id else False
            log.warning(
                "publish failed",
                extra={"id": message["id"], "queue": queue, "error": str(exc), "refunded": refunded},
            )
            problems[index] = Problem(
                503, "broker_unavailable", "The message broker did not take the message; not queued."
            )
        except PublishUnconfirmed as exc:
            problems[index] = await kept_problem(
                exc, validator, verdict.usage_id, message["id"], queue, settings, background, first_attempt=True
            )

    sending = []
    for index, verdict in verdicts.items():
        if isinstance(verdict, ValidatorUnavailable):
            problems[index] = Problem(503, "validator_unavailable", "The token could not be checked; not queued.")
        elif not verdict.allowed:
            problems[index] = refusal(verdict)
        else:
            sending.append(publish(index, created[index], verdict))
    await asyncio.gather(*sending)
    results = [
        _item_problem(index, problems[index])
        if index in problems
        else {"index": index, "id": created[index]["id"], "status": "queued", "queue": queue}
        for index in range(len(messages))
    ]
    queued = len(messages) - len(problems)
    codes = {problem.code for problem in problems.values()}
    if not queued and len(codes) == 1 and REFUSAL_STATUS.get(next(iter(codes))) == 401:
        # Not a token that may send anything: one answer for the request, as the single routes give.
        raise problems[0]
    log.info("batch", extra={"queue": queue, "messages": len(messages), "queued": queued})
    return JSONResponse(
        {"queued": queued, "not_queued": len(messages) - queued, "results": results},
        status_code=ALL_QUEUED if queued == len(messages) else SOME_NOT,
    )
