"""Rate refusals, stored as every refusal is, but counted: a flood over a rate is one row per
token, action and client address per flush (about a second) and process, with `count`, the
first one's time and request id, instead of a database write per request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert

from token_validator.models import Refusal

CODE = "rate_limited"
FLUSH_EVERY_S = 1.0

Key = tuple[int, str, str, str | None]  # token id, prefix, action, client address


@dataclass
class _Pending:
    at: datetime
    request_id: str | None
    count: int = 1


class RefusalTally:
    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._pending: dict[Key, _Pending] = {}
        self._monotonic = monotonic
        self._flushed = float("-inf")

    def add(self, key: Key, at: datetime, request_id: str | None) -> bool:
        """Count one refusal; True when it is time to flush (nothing flushed for a second)."""
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = _Pending(at, request_id[:128] if request_id else None)
        else:
            pending.count += 1
        return self._monotonic() - self._flushed >= FLUSH_EVERY_S

    def take(self) -> dict[Key, _Pending]:
        """What to write, now forgotten here (called on the event loop, written off it)."""
        pending, self._pending = self._pending, {}
        self._flushed = self._monotonic()
        return pending


def write(engine: Engine, pending: dict[Key, _Pending]) -> None:
    if not pending:
        return
    rows = [
        {
            "at": item.at,
            "token_id": token_id,
            "prefix": prefix,
            "action": action[:64],
            "code": CODE,
            "client_ip": client_ip[:64] if client_ip else None,
            "request_id": item.request_id,
            "count": item.count,
        }
        for (token_id, prefix, action, client_ip), item in pending.items()
    ]
    with engine.begin() as connection:
        connection.execute(insert(Refusal), rows)
