"""One validator process's side of the rates: its leases, served in memory.

A validation that would spend takes one slot of every rate that applies to its token (the
token's own, and each of its groups'); a slot comes from this process's lease of the current
window, and a new lease is taken (`leases.take`, one UPDATE) only when the lease is used up.
When a rate's window has nothing left to lease, the process remembers it until the window ends,
so a flood over the rate costs no database round trip. A slot of a validation that then spends
nothing (any refusal, a quota's included; an Idempotency-Key replay) goes back to the lease: the
rate counts spent uses only.

Everything here runs on the event loop's thread (the leases are taken in the thread pool, one
at a time per rate), so the in-memory counts need no lock.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from token_validator.rates import leases, tally
from token_validator.rates.leases import Scope, Subject

SUBJECT_TTL = 1.0  # seconds a token's rates are known without asking again: a change applies within it
MAX_SUBJECTS = 10_000
LEASE_SHARE = 10  # a lease takes a tenth of the allowance (at least 1)


def lease_size(allowance: int) -> int:
    return max(1, math.ceil(allowance / LEASE_SHARE))


@dataclass(frozen=True)
class RateState:
    """What a client is told of the rate that binds: `remaining` is this process's best
    knowledge (what no process has leased yet, plus this process's unused lease)."""

    limit: int
    per_seconds: int
    remaining: int
    reset_at: datetime  # the end of the current window


@dataclass
class _Lease:
    window: int = -1
    left: int = 0  # slots of `window` this process holds and has not used
    unleased: int = 0  # what the window had left for any process after this lease
    allowance: int = 0
    per_seconds: int = 1
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True)
class Held:
    """Slots taken for one validation: given back unless it spent a use."""

    slots: tuple[tuple[int, int], ...]  # (rate id, window)
    state: RateState | None  # the binding rate, told on an accepted answer


@dataclass(frozen=True)
class Refused:
    subject: Subject
    state: RateState


def _window_end(window: int, per_seconds: int) -> datetime:
    return datetime.fromtimestamp((window + 1) * per_seconds, UTC)


class RateLimiter:
    def __init__(self, engine: Engine, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._monotonic = monotonic
        self._subjects: dict[str, tuple[float, Subject | None]] = {}
        self._loading: dict[str, asyncio.Future[Subject | None]] = {}
        self._leases: dict[int, _Lease] = {}
        self._tally = tally.RefusalTally(monotonic=monotonic)

    async def subject(self, hashed: str) -> Subject | None:
        """The token with digest `hashed` and its rates, as known for the last SUBJECT_TTL; the
        validations that find it unknown or stale together wait for one read."""
        known = self._subjects.get(hashed)
        if known is not None and known[0] > self._monotonic():
            return known[1]
        loading = self._loading.get(hashed)
        if loading is None:
            loading = asyncio.ensure_future(self._load(hashed))
            self._loading[hashed] = loading
        return await asyncio.shield(loading)

    async def _load(self, hashed: str) -> Subject | None:
        try:
            found = await run_in_threadpool(leases.subject, self._engine, hashed)
        finally:
            self._loading.pop(hashed, None)
        if len(self._subjects) >= MAX_SUBJECTS:
            self._subjects.clear()
        self._subjects[hashed] = (self._monotonic() + SUBJECT_TTL, found)
        return found

    def forget(self) -> None:
        """Ask again which rates apply, and lease again (an admin changed one in this process)."""
        self._subjects.clear()
        self._leases.clear()

    async def hold(self, subject: Subject, instant: datetime) -> Held | Refused:
        """One slot of each of `subject`'s rates at `instant`, or the refusal of the first rate
        with none left (then nothing is held)."""
        epoch = int(instant.timestamp())
        taken: list[tuple[int, int]] = []
        states: list[RateState] = []
        for scope in subject.scopes:
            try:
                lease = await self._slot(scope, epoch)
            except BaseException:
                self.give_back(Held(tuple(taken), None))
                raise
            if lease is None:  # the rate was cleared meanwhile
                continue
            state = self._state(lease, epoch)
            if lease.left <= 0:
                self.give_back(Held(tuple(taken), None))
                return Refused(subject, state)
            lease.left -= 1
            taken.append((scope.rate_id, lease.window))
            states.append(RateState(state.limit, state.per_seconds, state.remaining - 1, state.reset_at))
        binding = min(states, key=lambda s: s.remaining, default=None)
        return Held(tuple(taken), binding)

    def give_back(self, held: Held) -> None:
        for rate_id, window in held.slots:
            lease = self._leases.get(rate_id)
            if lease is not None and lease.window == window:
                lease.left += 1

    async def _slot(self, scope: Scope, epoch: int) -> _Lease | None:
        """This process's lease of `scope`'s current window, renewed if used up and the window
        may have more; None when the rate no longer exists."""
        lease = self._leases.setdefault(scope.rate_id, _Lease())
        if self._usable(lease, scope, epoch):
            return lease
        async with lease.lock:
            if self._usable(lease, scope, epoch):
                return lease
            want = lease_size(scope.allowance)
            grant = await run_in_threadpool(leases.take, self._engine, scope.rate_id, want=want, epoch=epoch)
            if grant is None:
                self._leases.pop(scope.rate_id, None)
                return None
            if grant.window != lease.window:
                lease.left = 0
            lease.window, lease.left = grant.window, lease.left + grant.taken
            lease.unleased = grant.allowance - grant.granted
            lease.allowance, lease.per_seconds = grant.allowance, grant.per_seconds
            return lease

    def _usable(self, lease: _Lease, scope: Scope, epoch: int) -> bool:
        """Serve from `lease` without asking: it has slots of a current window, or that window is
        known to be all leased (a refusal until it ends) under the rate as it now is (a changed
        rate is asked again: it may allow more)."""
        if lease.window < epoch // lease.per_seconds:
            return False
        if lease.left > 0:
            return True
        return lease.unleased <= 0 and (lease.allowance, lease.per_seconds) == (scope.allowance, scope.per_seconds)

    def _state(self, lease: _Lease, epoch: int) -> RateState:
        return RateState(
            limit=lease.allowance,
            per_seconds=lease.per_seconds,
            remaining=max(0, lease.unleased) + lease.left,
            reset_at=_window_end(max(lease.window, epoch // lease.per_seconds), lease.per_seconds),
        )

    async def refused(
        self, refusal: Refused, *, action: str, client_ip: str | None, request_id: str | None, at: datetime
    ) -> None:
        """Store a rate refusal, counted (`tally`): written at once after a quiet second, else
        with the next flush."""
        key = (refusal.subject.token_id, refusal.subject.prefix, action, client_ip)
        if self._tally.add(key, at, request_id):
            await self.flush()

    async def flush(self) -> None:
        pending = self._tally.take()
        if pending:
            await run_in_threadpool(tally.write, self._engine, pending)
