"""Tokens as the admin sees them: create (plaintext once), list, revoke, restrict, top up."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, or_, select, update
from sqlalchemy.orm import Session

from token_validator.counters import UNLIMITED, grant_values, set_remaining_values
from token_validator.models import Application, Group, Token, User
from token_validator.repository.owners import OWNER_MODELS
from token_validator.repository.pages import PageOf, affected, contains, paginate
from token_validator.token_strings import Kind, digest, new_token, visible_prefix

OWNER_COLUMN = {"application": "application_id", "group": "group_id", "user": "user_id"}


@dataclass(frozen=True)
class TokenFilter:
    kind: str | None = None
    status: str | None = None  # active | revoked | expired
    owner_id: int | None = None  # with `kind`
    q: str | None = None  # prefix or name


def owner_name_column() -> Any:
    return func.coalesce(Application.name, Group.name, User.name).label("owner_name")


def _with_owner(query: Select[Any]) -> Select[Any]:
    return (
        query.outerjoin(Application, Application.id == Token.application_id)
        .outerjoin(Group, Group.id == Token.group_id)
        .outerjoin(User, User.id == Token.user_id)
    )


def create(
    session: Session,
    *,
    kind: Kind,
    owner_id: int,
    actions: str,
    restriction: str,
    quota: int | None,
    expires_at: datetime | None,
    name: str | None,
    now: datetime,
) -> tuple[str, Token]:
    """The new token's plaintext (never stored) and its row."""
    plaintext = new_token(kind)
    token = Token(
        kind=kind,
        prefix=visible_prefix(plaintext),
        digest=digest(plaintext),
        name=name,
        actions=actions,
        restriction=restriction,
        quota=None if restriction == UNLIMITED else quota,
        used=0,
        period=0,
        expires_at=expires_at,
        created_at=now,
        **{OWNER_COLUMN[kind]: owner_id},
    )
    session.add(token)
    session.flush()
    return plaintext, token


def get(session: Session, token_id: int) -> tuple[Token, str] | None:
    row = session.execute(_with_owner(select(Token, owner_name_column())).where(Token.id == token_id)).one_or_none()
    return None if row is None else (row[0], row[1])


def list_tokens(session: Session, where: TokenFilter, *, now: datetime, page: int, per_page: int) -> PageOf[Any]:
    """Rows of (token, owner name), newest first."""
    query = _with_owner(select(Token, owner_name_column())).order_by(Token.created_at.desc(), Token.id.desc())
    if where.kind:
        query = query.where(Token.kind == where.kind)
        if where.owner_id is not None:
            query = query.where(getattr(Token, OWNER_COLUMN[where.kind]) == where.owner_id)
    if where.status == "revoked":
        query = query.where(Token.revoked_at.is_not(None))
    elif where.status == "expired":
        query = query.where(Token.revoked_at.is_(None), Token.expires_at.is_not(None), Token.expires_at <= now)
    elif where.status == "active":
        query = query.where(Token.revoked_at.is_(None), or_(Token.expires_at.is_(None), Token.expires_at > now))
    if where.q:
        query = query.where(or_(contains(Token.prefix, where.q), contains(Token.name, where.q)))
    return paginate(session, query, page=page, per_page=per_page)


def owner_exists(session: Session, kind: str, owner_id: int) -> bool:
    return session.get(OWNER_MODELS[kind], owner_id) is not None


def revoke(session: Session, token_id: int, now: datetime) -> bool:
    """True if it was active until now; revoking twice changes nothing."""
    result = session.execute(
        update(Token).where(Token.id == token_id, Token.revoked_at.is_(None)).values(revoked_at=now)
    )
    return bool(affected(result))


def set_restriction(
    session: Session, model: type[Token] | type[Group], row_id: int, restriction: str, quota: int | None
) -> None:
    """A new limit of the same kind keeps what was used; another kind of restriction starts afresh."""
    same_kind = model.restriction == restriction
    session.execute(
        update(model)
        .where(model.id == row_id)
        .values(
            restriction=restriction,
            quota=None if restriction == UNLIMITED else quota,
            used=case((same_kind, model.used), else_=0),
            period=case((same_kind, model.period), else_=0),
        )
        .execution_options(synchronize_session=False)
    )


def change_remaining(
    session: Session,
    model: type[Token] | type[Group],
    row_id: int,
    *,
    set_to: int | None,
    grant: int | None,
    period: int,
) -> None:
    values = (
        set_remaining_values(model, set_to, period) if set_to is not None else grant_values(model, grant or 0, period)
    )
    session.execute(
        update(model)
        .where(model.id == row_id, model.restriction != UNLIMITED)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
