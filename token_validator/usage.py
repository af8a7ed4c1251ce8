"""Counted uses: refunds (when a sender could not publish) and usage statistics."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import Engine, func, select, update

from token_validator import idempotency
from token_validator.counters import refundable
from token_validator.models import Group, Token, Usage
from token_validator.moment import Moment
from token_validator.months import Month

RefundOutcome = Literal["refunded", "already_refunded", "unknown"]


def refund(engine: Engine, usage_id: str, moment: Moment) -> RefundOutcome:
    """Give a use back to every counter it was taken from; a second call changes nothing.

    Marking the usage refunded is itself conditional (`refunded_at IS NULL`), so two concurrent
    refunds of one use give it back once.
    """
    with engine.begin() as connection:
        row = connection.execute(
            update(Usage)
            .where(Usage.id == usage_id, Usage.refunded_at.is_(None))
            .values(refunded_at=moment.now, unconfirmed_at=None)
            .returning(Usage.token_id, Usage.cost, Usage.period, Usage.group_ids)
        ).one_or_none()
        if row is None:
            known = connection.execute(select(Usage.id).where(Usage.id == usage_id)).first() is not None
            return "already_refunded" if known else "unknown"
        connection.execute(
            update(Token)
            .where(Token.id == row.token_id, refundable(Token, row.period))
            .values(used=Token.used - row.cost)
        )
        for group_id in sorted(int(g) for g in row.group_ids.split(",") if g):
            connection.execute(
                update(Group)
                .where(Group.id == group_id, refundable(Group, row.period))
                .values(used=Group.used - row.cost)
            )
        idempotency.release(connection, usage_id)
    return "refunded"


def daily(engine: Engine, token_id: int, month: Month) -> list[tuple[str, int]]:
    """Uses per day of `month` (every day listed, zero included), refunds left out."""
    days = [d.isoformat() for d in month.days()]
    with engine.connect() as connection:
        rows = connection.execute(
            select(Usage.day, func.sum(Usage.cost))
            .where(Usage.token_id == token_id, Usage.day >= days[0], Usage.day <= days[-1], Usage.refunded_at.is_(None))
            .group_by(Usage.day)
        ).all()
    found = {day: int(total) for day, total in rows}
    return [(day, found.get(day, 0)) for day in days]


def monthly(engine: Engine, token_id: int, months: list[Month]) -> list[tuple[str, int]]:
    """Uses per month for `months` (oldest first), refunds left out."""
    first, last = months[0].days()[0].isoformat(), months[-1].days()[-1].isoformat()
    with engine.connect() as connection:
        rows = connection.execute(
            select(Usage.period, func.sum(Usage.cost))
            .where(Usage.token_id == token_id, Usage.day >= first, Usage.day <= last, Usage.refunded_at.is_(None))
            .group_by(Usage.period)
        ).all()
    found = {int(period): int(total) for period, total in rows}
    return [(m.label, found.get(m.period, 0)) for m in months]


def top_tokens(engine: Engine, month: Month, limit: int) -> list[tuple[int, int]]:
    """(token id, uses) in `month`, most used first."""
    days = month.days()
    with engine.connect() as connection:
        rows = connection.execute(
            select(Usage.token_id, func.sum(Usage.cost).label("uses"))
            .where(Usage.day >= days[0].isoformat(), Usage.day <= days[-1].isoformat(), Usage.refunded_at.is_(None))
            .group_by(Usage.token_id)
            .order_by(func.sum(Usage.cost).desc(), Usage.token_id)
            .limit(limit)
        ).all()
    return [(int(token_id), int(uses)) for token_id, uses in rows]
