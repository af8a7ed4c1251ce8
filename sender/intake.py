"""From a checked request to an answer: validate the token (spending a use), publish, answer.

The body was validated before this runs, so bad input never spends a use. A use counted for a
message the broker did not confirm is refunded. With an Idempotency-Key, the validator keeps the
first answer: a repeat is answered from it, with nothing published and no use counted.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from cartero_common.aio_amqp import AsyncPublisher, BrokerUnavailable
from cartero_common.clock import Clock
from cartero_common.http import Problem
from sender.auth import fingerprint, idempotency_key, rate_limit_headers, refusal
from sender.config import Settings
from sender.publishing import new_message, publish_with_event
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
    if verdict.idempotency == "retry":
        # The first attempt's fate is unknown: publish again under its id (consumers dedupe by id).
        message["id"] = stored.get("body", {}).get("id", message["id"])
    token_fields = {"token_id": verdict.token_id, "token_kind": verdict.kind, "token_prefix": verdict.prefix}
    try:
        await publish_with_event(publisher, queue=queue, message=message, now=now, event_extra=token_fields)
    except BrokerUnavailable as exc:
        refunded = await validator.refund(verdict.usage_id) if verdict.usage_id else False
        log.warning(
            "publish failed", extra={"id": message["id"], "queue": queue, "error": str(exc), "refunded": refunded}
        )
        raise Problem(
            503, "broker_unavailable", "The message broker did not confirm the message; nothing was queued."
        ) from None
    if key is not None and verdict.usage_id:
        await validator.confirm(verdict.usage_id)
    log.info("queued", extra={"id": message["id"], "queue": queue, "token_prefix": verdict.prefix})
    return JSONResponse(_queued(message["id"], queue), status_code=ACCEPTED, headers=headers)
