"""Rows as the admin API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from token_validator.counters import MONTHLY, state_of
from token_validator.models import Group, RateLimit, Token
from token_validator.moment import Moment, as_utc
from token_validator.repository.rates import PER_NAME
from token_validator.schemas import CounterPublic, OwnerRef, RatePublic, Ref, TokenPublic, TokenStatus
from token_validator.token_strings import action_list


def local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    utc = as_utc(value)
    return None if utc is None else utc.astimezone(zone)


def counter(row: Token | Group, moment: Moment, zone: ZoneInfo) -> CounterPublic:
    state = state_of(row)
    return CounterPublic(
        type=row.restriction,
        limit=row.quota,
        used=state.used_in(moment.period),
        remaining=state.remaining(moment.period),
        reset_at=moment.next_month.astimezone(zone) if row.restriction == MONTHLY else None,
    )


def rate_public(row: RateLimit | None) -> RatePublic | None:
    return None if row is None else RatePublic(limit=row.allowance, per=PER_NAME[row.per_seconds])


def token_status(token: Token, moment: Moment) -> TokenStatus:
    if token.revoked_at is not None:
        return "revoked"
    expires_at = as_utc(token.expires_at)
    if expires_at is not None and expires_at <= moment.now:
        return "expired"
    return "active"


def owner_id(token: Token) -> int:
    return int(token.application_id or token.group_id or token.user_id or 0)


def token_public(
    token: Token, owner_name: str, moment: Moment, zone: ZoneInfo, rate: RateLimit | None = None
) -> TokenPublic:
    return TokenPublic(
        id=token.id,
        prefix=token.prefix,
        kind=token.kind,
        name=token.name,
        owner=OwnerRef(type=token.kind, id=owner_id(token), name=owner_name),
        actions=action_list(token.actions),
        restriction=counter(token, moment, zone),
        rate=rate_public(rate),
        status=token_status(token, moment),
        expires_at=local(token.expires_at, zone),
        created_at=local(token.created_at, zone),
        last_used_at=local(token.last_used_at, zone),
        revoked_at=local(token.revoked_at, zone),
    )


def refs(rows: list[Any]) -> list[Ref]:
    return [Ref(id=row.id, name=row.name) for row in rows]
