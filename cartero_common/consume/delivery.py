"""The handler both delivering consumers (SMS, email) share: read, dedupe, send, record.

Order, and the window it leaves:

1. read the message (unreadable → `Unreadable`, dead-lettered at once);
2. look its id up in the ledger: already delivered → `Done(duplicate=True)`, nothing is sent;
3. send through the provider;
4. record the id, and the provider that took it, in the ledger (committed);
5. the loop publishes the `consumido` event, waits for the broker's confirm, then acks.

A crash after 4 only causes a redelivery that step 2 absorbs. A crash between 3 and 4 — after
the provider accepted the message, before the commit — is the one window left: the message is
redelivered and sent again (at least once, never lost). For providers that are not idempotent
(HTTP gateway, SMTP) the loop hands over one message at a time, so that window is a single
commit; idempotent ones (log, file) take batches and commit once per batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from cartero_common.clock import Clock
from cartero_common.consume.ledger import Ledger, Processed
from cartero_common.consume.outcomes import BatchHandler, Delivery, Done, Failure, Outcome, TransientFailure, Unreadable
from cartero_common.json_input import NotJson, parse_json
from cartero_common.logging import lines_held

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
DEFAULT_MAX_BODY = 256 * 1024  # four times the sender's limit: more is not a message of ours


def read_message(delivery: Delivery, model: type[M], *, max_body: int = DEFAULT_MAX_BODY) -> tuple[dict[str, Any], M]:
    """The JSON object in the body, and the same validated by `model`; `Unreadable` if not."""
    if len(delivery.body) > max_body:
        raise Unreadable(f"body of {len(delivery.body)} bytes is over the {max_body}-byte limit")
    try:
        payload = parse_json(delivery.body)
    except NotJson as exc:
        raise Unreadable(f"body is not UTF-8 JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Unreadable(f"body is JSON but not an object ({type(payload).__name__})")
    try:
        return payload, model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        found = payload.get("id")
        known = {"id": str(found)[:200]} if isinstance(found, str | int) else None
        raise Unreadable(f"invalid fields: {problems}", message=known) from None


def sending_handler(
    *,
    model: type[M],
    send: Callable[[M], str | None],
    ledger: Ledger,
    clock: Clock,
    max_body: int = DEFAULT_MAX_BODY,
) -> BatchHandler:
    """A batch handler over `send(message)`, which returns when delivered (the name of the
    provider that took it, or None) or raises a `Failure`."""

    def handle(batch: Sequence[Delivery]) -> list[Outcome]:
        read: list[tuple[dict[str, Any], M] | Failure] = []
        for delivery in batch:
            try:
                read.append(read_message(delivery, model, max_body=max_body))
            except Failure as failure:
                read.append(failure)
        done = ledger.lookup(item[1].id for item in read if isinstance(item, tuple))  # type: ignore[attr-defined]
        outcomes: list[Outcome] = []
        recorded: list[tuple[str, datetime, str | None]] = []
        # The `log` provider's lines (and any other) go out in one write when the sends are
        # over, still before the ledger records them as sent.
        with lines_held():
            for item in read:
                if isinstance(item, Failure):
                    outcomes.append(item)
                    continue
                payload, message = item
                message_id: str = message.id  # type: ignore[attr-defined]
                if message_id in done:
                    first = done[message_id]
                    outcomes.append(Done(payload, consumed_at=first.at, duplicate=True, provider=first.provider))
                    continue
                try:
                    provider = send(message)
                except Failure as failure:
                    outcomes.append(failure.about(payload))
                    continue
                except Exception as exc:  # noqa: BLE001 - a provider bug is retried, then dead-lettered
                    log.exception("provider failed unexpectedly", extra={"id": message_id})
                    outcomes.append(TransientFailure(f"unexpected provider error: {exc!r}", message=payload))
                    continue
                now = clock()
                done[message_id] = Processed(now, provider)
                recorded.append((message_id, now, provider))
                outcomes.append(Done(payload, consumed_at=now, provider=provider))
        ledger.record(recorded)
        return outcomes

    return handle
