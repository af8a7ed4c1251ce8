"""Applications, groups and users: the owners of tokens. They share one shape (name, disabled)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from token_validator.models import Application, Group, Membership, Token, User
from token_validator.repository.pages import PageOf, affected, contains, paginate

OwnerModel = type[Application] | type[Group] | type[User]
Owner = Application | Group | User

OWNER_MODELS: dict[str, OwnerModel] = {"application": Application, "group": Group, "user": User}


def token_column(model: OwnerModel) -> Any:
    return {Application: Token.application_id, Group: Token.group_id, User: Token.user_id}[model]


def list_owners(
    session: Session, model: OwnerModel, *, q: str | None, disabled: bool | None, page: int, per_page: int
) -> PageOf[Any]:
    """Rows of (owner, token count), by name."""
    tokens = select(func.count(Token.id)).where(token_column(model) == model.id).correlate(model).scalar_subquery()
    query = select(model, tokens.label("tokens")).order_by(model.name, model.id)
    if q:
        query = query.where(contains(model.name, q))
    if disabled is not None:
        query = query.where(model.disabled == disabled)
    return paginate(session, query, page=page, per_page=per_page)


def get(session: Session, model: OwnerModel, owner_id: int) -> Any:
    return session.get(model, owner_id)


def by_name(session: Session, model: OwnerModel, name: str) -> Any:
    return session.execute(select(model).where(model.name == name)).scalar_one_or_none()


def name_taken(session: Session, model: OwnerModel, name: str, *, other_than: int | None = None) -> bool:
    query = select(model.id).where(model.name == name)
    if other_than is not None:
        query = query.where(model.id != other_than)
    return session.execute(query).first() is not None


def create(session: Session, model: OwnerModel, *, name: str, now: datetime, disabled: bool = False) -> Any:
    owner = model(name=name, disabled=disabled, created_at=now)
    session.add(owner)
    session.flush()
    return owner


def token_count(session: Session, model: OwnerModel, owner_id: int) -> int:
    return int(session.execute(select(func.count(Token.id)).where(token_column(model) == owner_id)).scalar_one())


def delete_owner(session: Session, model: OwnerModel, owner_id: int) -> int:
    """Delete the owner and its tokens (their usage and keys go with them); the number of tokens."""
    removed = affected(session.execute(delete(Token).where(token_column(model) == owner_id)))
    session.execute(delete(model).where(model.id == owner_id))
    return int(removed or 0)


def members(session: Session, group_id: int, *, page: int, per_page: int) -> PageOf[Any]:
    query = select(User).join(Membership, Membership.user_id == User.id).where(Membership.group_id == group_id)
    return paginate(session, query.order_by(User.name, User.id), page=page, per_page=per_page)


def member_count(session: Session, group_id: int) -> int:
    return int(session.execute(select(func.count()).where(Membership.group_id == group_id)).scalar_one())


def groups_of(session: Session, user_id: int) -> list[Group]:
    query = select(Group).join(Membership, Membership.group_id == Group.id).where(Membership.user_id == user_id)
    return list(session.execute(query.order_by(Group.name)).scalars())


def is_member(session: Session, group_id: int, user_id: int) -> bool:
    return session.get(Membership, (group_id, user_id)) is not None


def add_member(session: Session, group_id: int, user_id: int) -> bool:
    """True when the user was added, False when already a member."""
    if is_member(session, group_id, user_id):
        return False
    session.add(Membership(group_id=group_id, user_id=user_id))
    session.flush()
    return True


def remove_member(session: Session, group_id: int, user_id: int) -> bool:
    removed = session.execute(delete(Membership).where(Membership.group_id == group_id, Membership.user_id == user_id))
    return bool(affected(removed))
