"""`GET /v1/messages/{id}`: a message's status, for a token of the owner that sent it.

The token is identified (nothing spent, no action needed), then the message log is asked for
the id on behalf of that owner. An unknown id and another owner's id are one answer: 404
`message_not_found`, same body, one lookup each, so the route tells nobody what others sent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from cartero_common.http import Problem
from sender.auth import REFUSAL_STATUS, _unauthorized
from sender.metrics import STATUS_REQUESTS, STATUS_SECONDS
from sender.status_client import StatusClient, StatusUnavailable
from sender.validator_client import ValidatorClient, ValidatorUnavailable

log = logging.getLogger(__name__)
RETRY_AFTER = "2"


def not_found() -> Problem:
    return Problem(404, "message_not_found", "No message with this id was sent by this token's owner.")


def _unavailable(code: str, detail: str) -> Problem:
    return Problem(503, code, detail, headers={"Retry-After": RETRY_AFTER})


async def _owner(validator: ValidatorClient, token: str) -> str:
    try:
        code, owner_ref = await validator.identify(token)
    except ValidatorUnavailable as exc:
        log.warning("validator unavailable", extra={"error": str(exc)})
        STATUS_REQUESTS.labels("unavailable").inc()
        raise _unavailable("validator_unavailable", "The token could not be checked.") from None
    if code == "ok" and owner_ref is not None:
        return owner_ref
    status = REFUSAL_STATUS.get(code)
    if status == 401:
        STATUS_REQUESTS.labels("unauthorized").inc()
        raise _unauthorized(code)
    if code == "subject_disabled":
        STATUS_REQUESTS.labels("forbidden").inc()
        raise Problem(403, code, "The token's owner is disabled.")
    STATUS_REQUESTS.labels("unavailable").inc()
    raise _unavailable("validator_unavailable", "The token could not be checked.")


async def message_status(
    *, message_id: str, token: str, validator: ValidatorClient, logs: StatusClient
) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        owner_ref = await _owner(validator, token)
        try:
            found = await logs.status(message_id, owner_ref)
        except StatusUnavailable as exc:
            log.warning("message log unavailable", extra={"id": message_id, "error": str(exc)})
            STATUS_REQUESTS.labels("unavailable").inc()
            raise _unavailable("status_unavailable", "The message log did not answer in time; try again.") from None
        if found.status is None:
            STATUS_REQUESTS.labels("not_found").inc()
            raise not_found()
        STATUS_REQUESTS.labels("found").inc()
        return found.status
    finally:
        STATUS_SECONDS.observe(time.perf_counter() - started)
