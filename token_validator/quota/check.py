"""What a sender asks (`Check`) and what it is told (`Decision`), whichever path decided it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from token_validator.counters import UNLIMITED, CounterState, Limit
from token_validator.idempotency import Claim, IdempotencyRequest
from token_validator.moment import Moment
from token_validator.rates import RateState

OK = "ok"


@dataclass(frozen=True)
class Check:
    token: str
    action: str
    cost: int = 1
    request_id: str | None = None
    client_ip: str | None = None
    idempotency: IdempotencyRequest | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str
    token_id: int | None = None
    kind: str | None = None
    prefix: str | None = None
    owner: str | None = None
    owner_id: int | None = None
    limit: Limit | None = None
    usage_id: str | None = None
    idempotency: Claim | None = None
    counters: list[dict[str, Any]] = field(default_factory=list)
    rate: RateState | None = None  # the binding rate limit, if any applies (`token_validator.rates`)

    @property
    def owner_ref(self) -> str | None:
        """`<kind>:<id>` of the token's owner (`application:12`): what the message log records of
        who sent a message, stable across a rename, unlike `owner` (its name)."""
        return f"{self.kind}:{self.owner_id}" if self.kind is not None and self.owner_id is not None else None


def counters_public(scopes: list[tuple[str, int]], states: list[CounterState], moment: Moment) -> list[dict[str, Any]]:
    """The `counters` of an answer: each limited counter that applies, by scope and id."""
    return [
        {
            "scope": scope,
            "id": ident,
            "restriction": state.restriction,
            "limit": state.quota,
            "remaining": state.remaining(moment.period),
        }
        for (scope, ident), state in zip(scopes, states, strict=True)
        if state.restriction != UNLIMITED
    ]
