"""The batcher: concurrent fast-path spends of one token in one statement (PostgreSQL).

Every spend of a token locks its row until it commits, so however many connections and workers
there are, one busy token takes one spend at a time: a few hundred a second once the commit's
WAL flush and the scheduling of a loaded machine are counted. The sender's application token is
exactly such a token.

So a validator process spends for a token one batch at a time: while a statement for a
(token, action, cost) is in flight, the validations of that same key that arrive wait, and go
together in the next statement, which spends their total and records one usage each (or spends
nothing when the total does not fit; then each is decided alone). An idle validator sends each
validation on its own at once, so batching adds no wait; under load each answer waits at most for
the statement before it. A batch is one transaction, so nothing is answered before it committed,
and the row lock still arbitrates between processes and replicas: no overspend.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from prometheus_client import Histogram

from token_validator.db import Database
from token_validator.moment import Moment
from token_validator.quota.check import Check, Decision
from token_validator.quota.fast import spend_together

BATCH_SIZE = Histogram(
    "validator_spend_batch_size",
    "Validations of one token decided by one statement.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

Key = tuple[str, str, int]  # token digest, action, cost


@dataclass
class _Waiting:
    check: Check
    moment: Moment
    answer: asyncio.Future[Decision | None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class SpendBatcher:
    def __init__(self, db: Database, *, max_batch: int = 256) -> None:
        self._db = db
        self._max_batch = max_batch
        self._waiting: dict[Key, list[_Waiting]] = {}
        self._draining: set[Key] = set()

    async def spend(self, hashed: str, check: Check, moment: Moment) -> Decision | None:
        """`fast.spend_together`'s answer for `check`: allowed, or None (decide it the general way)."""
        key = (hashed, check.action, check.cost)
        waiting = _Waiting(check, moment)
        self._waiting.setdefault(key, []).append(waiting)
        if key not in self._draining:
            self._draining.add(key)
            # A task of its own: a caller that goes away (client disconnect) must not take the
            # statement, and the answers of the others waiting on it, with it.
            asyncio.get_running_loop().create_task(self._drain(key))
        return await asyncio.shield(waiting.answer)

    async def _drain(self, key: Key) -> None:
        try:
            while queued := self._waiting.pop(key, None):
                batch, rest = queued[: self._max_batch], queued[self._max_batch :]
                if rest:
                    self._waiting[key] = rest
                await self._spend(key, batch)
        except BaseException as exc:  # the loop is shutting down: nobody waits forever
            for waiting in self._waiting.pop(key, []):
                _settle(waiting.answer, exc)
            raise
        finally:
            self._draining.discard(key)

    async def _spend(self, key: Key, batch: list[_Waiting]) -> None:
        BATCH_SIZE.observe(len(batch))
        # The newest moment: every validation of the batch arrived before it, and is decided at it.
        moment = max((waiting.moment for waiting in batch), key=lambda m: m.now)
        try:
            decisions = await asyncio.to_thread(
                spend_together, self._db, key[0], [waiting.check for waiting in batch], moment
            )
        except asyncio.CancelledError as exc:
            for waiting in batch:
                _settle(waiting.answer, exc)
            raise
        except Exception as exc:  # noqa: BLE001 - this batch's callers answer with it; the next batch goes on
            for waiting in batch:
                _settle(waiting.answer, exc)
            return
        for waiting, decision in zip(batch, decisions, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(decision)


def _settle(answer: asyncio.Future[Decision | None], exc: BaseException) -> None:
    if answer.done():
        return
    if isinstance(exc, Exception):
        answer.set_exception(exc)
    else:
        answer.cancel()
