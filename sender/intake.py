"""From a checked request to an answer: validate the token (spending a use), publish, answer.

The body was validated before this runs, so bad input never spends a use. After the publish:

- confirmed: 202;
- certainly not taken (no connection, nack, unroutable): the use is refunded, the Idempotency-Key
  released, and the answer is 503 `broker_unavailable`;
- unknown (no confirm in time, or the connection dropped in flight): the use is kept, the key stays
  claimed, and the answer is 503 `publish_unconfirmed` with the message id. A retry with the same
  key republishes the same id, which the consumers' dedupe absorbs (`sender.settlement`).

With an Idempotency-Key, the validator keeps the first answer: a repeat is answered from it, with
nothing published and no use counted.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from cartero_common.amqp.publisher import AsyncPublisher, BrokerUnavailable, PublishUnconfirmed
from cartero_common.clock import Clock
from cartero_common.http import Problem
from sender.auth import fingerprint, idempotency_key, rate_limit_headers, refusal
from sender.config import Settings
from sender.metrics import UNCONFIRMED_PUBLISHES
from sender.publishing import new_message, publish_with_event
from sender.settlement import Unconfirmed, watch
from sender.validator_client import ValidatorClient, ValidatorUnavailable, Verdict

log = logging.getLogger(__name__)
ACCEPTED = 202


def _queued(message_id: str, queue: str) -> dict[str, str]:
    return {"id": message_id, "status": "queued", "queue": queue}


async def _verdict(
    validator: ValidatorClient,
    request: Request,
    *,
    token: str,
    action: str,
    message: dict[str, Any],
    queue: str,
    key: str | None,
    fields: dict[str, Any],
) -> Verdict:
    claim = None
    if key is not None:
        claim = {
            "key": key,
            "fingerprint": fingerprint(request.url.path, fields),
            "response": {"status": ACCEPTED, "body": _queued(message["id"], queue)},
        }
    try:
        return await validator.validate(
            token=token,
            action=action,
            request_id=message["id"],
            client_ip=request.client.host if request.client else None,
            idempotency=claim,
        )
    except ValidatorUnavailable as exc:
        log.warning("validator unavailable", extra={"id": message["id"], "error": str(exc)})
        raise Problem(503, "validator_unavailable", "The token could not be checked; nothing was queued.") from None


async def accept(
    request: Request,
    *,
    token: str,
    action: str,
    queue: str,
    fields: dict[str, Any],
    settings: Settings,
    publisher: AsyncPublisher,
    validator: ValidatorClient,
    clock: Clock,
) -> JSONResponse:
    key = idempotency_key(request)
    now = clock()
    message = new_message(fields, now=now, timezone=settings.timezone)
    verdict = await _verdict(
        validator, request, token=token, action=action, message=message, queue=queue, key=key, fields=fields
    )
    if not verdict.allowed:
        log.info("refused", extra={"id": message["id"], "code": verdict.code, "token_prefix": verdict.prefix})
        raise refusal(verdict)
    headers = rate_limit_headers(verdict)
    stored = verdict.stored_response or {}
    if verdict.idempotency == "replay":
        return JSONResponse(
            stored.get("body"),
            status_code=int(stored.get("status", ACCEPTED)),
            headers={**headers, "Idempotent-Replayed": "true"},
        )
    retry = verdict.idempotency == "retry"
    if retry:
        # The first attempt's fate is unknown: publish again under its id (consumers dedupe by id).
        message["id"] = stored.get("body", {}).get("id", message["id"])
    token_fields = {
        "token_id": verdict.token_id,
        "token_kind": verdict.kind,
        "token_prefix": verdict.prefix,
        "owner_ref": verdict.owner_ref,
    }
    background: set[asyncio.Task[None]] = request.app.state.background
    try:
        await publish_with_event(
            publisher, queue=queue, message=message, now=now, event_extra=token_fields, background=background
        )
    except BrokerUnavailable as exc:
        if not retry:
            refunded = await validator.refund(verdict.usage_id) if verdict.usage_id else False
            log.warning(
                "publish failed", extra={"id": message["id"], "queue": queue, "error": str(exc), "refunded": refunded}
            )
            raise Problem(
                503, "broker_unavailable", "The message broker did not take the message; nothing was queued."
            ) from None
        # A refused republish says nothing of the earlier copy, which the broker may hold.
        unknown = PublishUnconfirmed.never_answered(str(exc))
        raise await kept_problem(
            unknown, validator, verdict.usage_id, message["id"], queue, settings, background
        ) from None
    except PublishUnconfirmed as exc:
        raise await kept_problem(
            exc, validator, verdict.usage_id, message["id"], queue, settings, background, first_attempt=not retry
        ) from None
    if key is not None and verdict.usage_id:
        await validator.confirm(verdict.usage_id)
    log.info("queued", extra={"id": message["id"], "queue": queue, "token_prefix": verdict.prefix})
    return JSONResponse(_queued(message["id"], queue), status_code=ACCEPTED, headers=headers)


async def kept_problem(
    unknown: PublishUnconfirmed,
    validator: ValidatorClient,
    usage_id: str | None,
    message_id: str,
    queue: str,
    settings: Settings,
    background: set[asyncio.Task[None]],
    *,
    first_attempt: bool = False,
) -> Problem:
    """Keep the use of a publish with an unknown outcome, have it settled later, and say so."""
    UNCONFIRMED_PUBLISHES.inc()
    log.warning("publish unconfirmed: the use is kept", extra={"id": message_id, "queue": queue, "error": str(unknown)})
    if usage_id is not None:
        # Not recorded (the validator is unreachable; logged): the late answer may still settle it.
        await validator.mark_unconfirmed(usage_id, message_id)
        watch(background, validator, Unconfirmed(usage_id, message_id, queue, first_attempt), unknown.late)
    return Problem(
        503,
        "publish_unconfirmed",
        "The broker did not confirm the message in time; it may have been queued."
        " Retry with the same Idempotency-Key: the same message id is published again and delivered once.",
        headers={"Retry-After": str(max(1, math.ceil(settings.publish_timeout)))},
        id=message_id,
    )
