"""Queries for rate limits (`models.RateLimit`): one row per token or group that has a rate."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from token_validator.models import RateLimit

Per = Literal["second", "minute"]
PER_SECONDS: dict[str, int] = {"second": 1, "minute": 60}
PER_NAME: dict[int, Per] = {1: "second", 60: "minute"}
Target = Literal["token", "group"]


def get(session: Session, target: Target, target_id: int) -> RateLimit | None:
    column = RateLimit.token_id if target == "token" else RateLimit.group_id
    return session.scalars(select(RateLimit).where(column == target_id)).one_or_none()


def of_many(session: Session, target: Target, target_ids: list[int]) -> dict[int, RateLimit]:
    column = RateLimit.token_id if target == "token" else RateLimit.group_id
    if not target_ids:
        return {}
    rows = session.scalars(select(RateLimit).where(column.in_(target_ids))).all()
    return {int((row.token_id if target == "token" else row.group_id) or 0): row for row in rows}


def set_rate(session: Session, target: Target, target_id: int, rate: tuple[int, Per] | None) -> None:
    """Give `target_id` the rate (`limit`, `per`), or none. A new limit of the same window keeps
    what the current window has granted; another window length starts afresh."""
    column = RateLimit.token_id if target == "token" else RateLimit.group_id
    if rate is None:
        session.execute(delete(RateLimit).where(column == target_id))
        return
    allowance, per = rate
    per_seconds = PER_SECONDS[per]
    row = get(session, target, target_id)
    if row is None:
        row = RateLimit(
            token_id=target_id if target == "token" else None, group_id=target_id if target == "group" else None
        )
        row.window_index, row.granted, row.last_grant = 0, 0, 0
        session.add(row)
    elif row.per_seconds != per_seconds:
        # Window numbers of another length are not comparable: a minute's index is a sixtieth of a second's.
        row.window_index, row.granted, row.last_grant = 0, 0, 0
    row.allowance, row.per_seconds = allowance, per_seconds
    session.flush()


def described(row: RateLimit | None) -> dict[str, object] | None:
    """A rate as the admin API and the audit trail show it."""
    return None if row is None else {"limit": row.allowance, "per": PER_NAME[row.per_seconds]}
