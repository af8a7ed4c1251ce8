"""Idempotency keys on behalf of the senders (which own no state).

The first request with a key claims it in the same transaction that spends the use, storing the
answer the sender will give once the broker confirmed (state `pending`). The primary key
(token, key digest) makes two concurrent claims of one key impossible: the second transaction
fails on the unique key and, retried, finds the claim. Later requests with the key:

- `replay`: the claim is `done` (the sender confirmed the publish): the stored answer again;
- `in_progress`: still `pending` and recent: the first request is publishing right now;
- `retry`: `unconfirmed` (the sender published but the broker did not confirm in time, so it may
  hold the message), or `pending` for longer than any publish can take (the sender died or lost
  the validator between publishing and confirming): the stored answer is handed over to be
  published again with the same message id (consumers dedupe by id), still without counting a
  second use;
- `mismatch`: the key was used with a different request body.

A refund (the publish failed) deletes the claim, so the client's retry starts afresh. Keys older
than 24 hours are forgotten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from token_validator.models import IdempotencyKey
from token_validator.moment import Moment, as_utc
from token_validator.token_strings import digest

NEW, REPLAY, IN_PROGRESS, RETRY, MISMATCH = "new", "replay", "in_progress", "retry", "mismatch"
PENDING, UNCONFIRMED, DONE = "pending", "unconfirmed", "done"
KEY_TTL = timedelta(hours=24)
# Longer than a sender can take between spending and confirming (validator + publish timeouts).
STALE_AFTER = timedelta(seconds=30)

T = TypeVar("T")


@dataclass(frozen=True)
class IdempotencyRequest:
    key: str
    fingerprint: str
    response: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    outcome: str
    response: dict[str, Any] | None = None
    usage_id: str | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome in (NEW, REPLAY, RETRY)

    @property
    def code(self) -> str:
        return {IN_PROGRESS: "idempotency_in_progress", MISMATCH: "idempotency_key_mismatch"}.get(self.outcome, "ok")


def claim(connection: Connection, token_id: int, request: IdempotencyRequest, usage_id: str, moment: Moment) -> Claim:
    key = digest(request.key)
    where = (IdempotencyKey.token_id == token_id, IdempotencyKey.key_digest == key)
    row = connection.execute(
        select(
            IdempotencyKey.fingerprint,
            IdempotencyKey.state,
            IdempotencyKey.response,
            IdempotencyKey.usage_id,
            IdempotencyKey.created_at,
            IdempotencyKey.claimed_at,
        ).where(*where)
    ).one_or_none()
    if row is not None and _older(row.created_at, KEY_TTL, moment.now):
        connection.execute(delete(IdempotencyKey).where(*where))
        row = None
    if row is None:
        connection.execute(
            insert(IdempotencyKey).values(
                token_id=token_id,
                key_digest=key,
                fingerprint=request.fingerprint,
                usage_id=usage_id,
                state=PENDING,
                response=request.response,
                created_at=moment.now,
                claimed_at=moment.now,
            )
        )
        return Claim(NEW, usage_id=usage_id)
    if row.fingerprint != request.fingerprint:
        return Claim(MISMATCH)
    if row.state == DONE:
        return Claim(REPLAY, response=row.response, usage_id=row.usage_id)
    if row.state != UNCONFIRMED and not _older(row.claimed_at, STALE_AFTER, moment.now):
        return Claim(IN_PROGRESS)
    connection.execute(update(IdempotencyKey).where(*where).values(claimed_at=moment.now))
    return Claim(RETRY, response=row.response, usage_id=row.usage_id)


def _older(stamp: datetime, age: timedelta, now: datetime) -> bool:
    when = as_utc(stamp)
    return when is not None and when <= now - age


def retry_on_conflict(work: Callable[[], T]) -> T:
    """Run `work` again once if a concurrent request claimed the same key first; the second run
    sees that claim."""
    try:
        return work()
    except IntegrityError:
        return work()


def confirm(engine: Engine, usage_id: str) -> bool:
    """The sender's publish was confirmed: later requests with the key get the stored answer."""
    with engine.begin() as connection:
        result = connection.execute(
            update(IdempotencyKey).where(IdempotencyKey.usage_id == usage_id).values(state=DONE)
        )
    return bool(result.rowcount)


def mark_key(connection: Connection, usage_id: str, state: str) -> None:
    """Move the key claimed with this use (if any) to `state`."""
    connection.execute(update(IdempotencyKey).where(IdempotencyKey.usage_id == usage_id).values(state=state))


def release(connection: Connection, usage_id: str) -> None:
    connection.execute(delete(IdempotencyKey).where(IdempotencyKey.usage_id == usage_id))


def prune(engine: Engine, now: datetime) -> int:
    with engine.begin() as connection:
        result = connection.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at <= now - KEY_TTL))
    return int(result.rowcount or 0)
