"""Paginated listing and substring search shared by the admin lists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, CursorResult, Result, Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class PageOf(Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int


def paginate(session: Session, query: Select[Any], *, page: int, per_page: int) -> PageOf[Any]:
    """One page of `query` (already ordered) and the total count of its rows."""
    total = session.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = list(session.execute(query.limit(per_page).offset((page - 1) * per_page)))
    return PageOf(rows, int(total), page, per_page)


def contains(column: Any, text: str) -> ColumnElement[bool]:
    """Case-insensitive substring match with `%` and `_` in `text` taken literally."""
    result: ColumnElement[bool] = func.lower(column).contains(text.lower(), autoescape=True)
    return result


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE changed."""
    cursor: CursorResult[Any] = result  # type: ignore[assignment]
    return int(cursor.rowcount or 0)
