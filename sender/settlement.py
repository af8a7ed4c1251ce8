"""What the sender does with a publish whose outcome it could not learn in time.

The use stays counted and the validator is told it is unconfirmed (so a retry with the same
Idempotency-Key republishes the same message id at once, and reconciliation can find it). Then the
broker's late answer settles it, if it comes while this process lives:

- `ack`: the broker holds the message; the use is confirmed (and the key replays the 202);
- `nack` or `returned` on a first attempt: certainly not queued; the use is refunded and the key
  released. On a republish it proves nothing about the earlier copy, so the use stays kept;
- `lost` (the connection dropped, or no answer within the window): nothing is known; the
  validator's reconciliation settles the use from the message log later.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from cartero_common.amqp.publisher import LateAnswer
from sender.metrics import LATE_CONFIRMS
from sender.publishing import keep_running
from sender.validator_client import ValidatorClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unconfirmed:
    usage_id: str
    message_id: str
    queue: str
    first_attempt: bool  # False when it republished a message of an earlier unknown outcome


async def settle_late(validator: ValidatorClient, unconfirmed: Unconfirmed, late: asyncio.Future[LateAnswer]) -> None:
    answer = await late
    LATE_CONFIRMS.labels(answer.value).inc()
    context = {"id": unconfirmed.message_id, "queue": unconfirmed.queue, "result": answer.value}
    if answer is LateAnswer.ACK:
        log.warning("late confirm: the message is queued, its use stays counted", extra=context)
        await validator.confirm(unconfirmed.usage_id)
    elif answer is LateAnswer.LOST:
        log.warning("no answer from the broker: reconciliation will settle the use", extra=context)
    elif unconfirmed.first_attempt:
        refunded = await validator.refund(unconfirmed.usage_id)
        log.warning("late refusal: nothing was queued", extra={**context, "refunded": refunded})
    else:
        log.warning("a republish was refused; the earlier copy's fate is still unknown", extra=context)


def watch(
    background: set[asyncio.Task[None]],
    validator: ValidatorClient,
    unconfirmed: Unconfirmed,
    late: asyncio.Future[LateAnswer],
) -> None:
    """Settle in the background, once the broker answers."""
    keep_running(background, settle_late(validator, unconfirmed, late))
