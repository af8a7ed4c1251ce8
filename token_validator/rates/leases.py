"""The shared side of a rate: which rates apply to a token, and a lease of its window's allowance.

A lease is one UPDATE of the rate's row that moves it to the current window (never back: a
process whose clock lags takes from the newer window the row holds) and grants up to `want` of
what the window has left, recording the grant in `last_grant` so RETURNING can tell it: the
database evaluates it on the row it locks, so leases of concurrent processes never add up to
more than the allowance.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, Integer, String, bindparam, case, or_, select, update

from token_validator.models import Membership, RateLimit, Token

DIGEST = bindparam("p_digest", type_=String)
EPOCH = bindparam("p_epoch", type_=Integer)  # Unix seconds now, by the deciding process's clock
WANT = bindparam("p_want", type_=Integer)
RATE_ID = bindparam("p_rate_id", type_=Integer)


@dataclass(frozen=True)
class Scope:
    """A rate that applies to a token: its own (`token`) or one of its groups' (`group`)."""

    rate_id: int
    scope: str
    target_id: int
    allowance: int
    per_seconds: int


@dataclass(frozen=True)
class Grant:
    allowance: int
    per_seconds: int
    window: int
    granted: int  # of the window, by every process, this grant included
    taken: int  # by this grant (0: the window's allowance is all leased)


@dataclass(frozen=True)
class Subject:
    """A token as its rates see it: who it is, and every rate that applies to it."""

    token_id: int
    kind: str
    prefix: str
    scopes: tuple[Scope, ...]


_TOKEN = select(Token.id, Token.kind, Token.prefix, Token.group_id, Token.user_id).where(Token.digest == DIGEST)
_TOKEN_ID = bindparam("p_token_id", type_=Integer)
_GROUP_ID = bindparam("p_group_id", type_=Integer)
_USER_ID = bindparam("p_user_id", type_=Integer)
_RATES = (
    select(RateLimit.id, RateLimit.token_id, RateLimit.group_id, RateLimit.allowance, RateLimit.per_seconds)
    .where(
        or_(
            RateLimit.token_id == _TOKEN_ID,
            RateLimit.group_id == _GROUP_ID,
            RateLimit.group_id.in_(select(Membership.group_id).where(Membership.user_id == _USER_ID)),
        )
    )
    .order_by(RateLimit.id)
)

_WINDOW = EPOCH // RateLimit.per_seconds
_STALE = RateLimit.window_index < _WINDOW
_CURRENT = case((_STALE, 0), else_=RateLimit.granted)
_FREE = RateLimit.allowance - _CURRENT
_TAKEN = case((_FREE <= 0, 0), (_FREE < WANT, _FREE), else_=WANT)
TAKE_LEASE = (
    update(RateLimit)
    .where(RateLimit.id == RATE_ID)
    .values(
        window_index=case((_STALE, _WINDOW), else_=RateLimit.window_index), granted=_CURRENT + _TAKEN, last_grant=_TAKEN
    )
    .returning(
        RateLimit.allowance, RateLimit.per_seconds, RateLimit.window_index, RateLimit.granted, RateLimit.last_grant
    )
)


def subject(engine: Engine, hashed: str) -> Subject | None:
    """The token with digest `hashed` and the rates that apply to it; None for no such token."""
    with engine.connect() as connection:
        token = connection.execute(_TOKEN, {"p_digest": hashed}).one_or_none()
        if token is None:
            return None
        rows = connection.execute(
            _RATES, {"p_token_id": token.id, "p_group_id": token.group_id, "p_user_id": token.user_id}
        ).all()
    scopes = tuple(
        Scope(
            rate_id=row.id,
            scope="token" if row.token_id is not None else "group",
            target_id=int(row.token_id if row.token_id is not None else row.group_id),
            allowance=int(row.allowance),
            per_seconds=int(row.per_seconds),
        )
        for row in rows
    )
    return Subject(token_id=int(token.id), kind=str(token.kind), prefix=str(token.prefix), scopes=scopes)


def take(engine: Engine, rate_id: int, *, want: int, epoch: int) -> Grant | None:
    """Up to `want` of the window holding `epoch`; None when the rate is gone (cleared meanwhile)."""
    with engine.begin() as connection:
        row = connection.execute(TAKE_LEASE, {"p_rate_id": rate_id, "p_want": want, "p_epoch": epoch}).one_or_none()
    if row is None:
        return None
    return Grant(
        allowance=int(row.allowance),
        per_seconds=int(row.per_seconds),
        window=int(row.window_index),
        granted=int(row.granted),
        taken=int(row.last_grant),
    )
