"""Admin API: applications, groups (with their quota and members) and users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cartero_common.http import Problem
from token_validator.api.common import Id, PageNo, PerPage, audited, paged
from token_validator.deps import Actor, AdminDep, DbDep, MomentDep, ZoneDep
from token_validator.models import Application, Group, User
from token_validator.moment import Moment
from token_validator.repository import owners, webhooks
from token_validator.repository import rates as rate_repo
from token_validator.repository import tokens as token_repo
from token_validator.repository.owners import OwnerModel
from token_validator.schemas import (
    ApplicationPublic,
    GroupCreate,
    GroupPublic,
    OwnerCreate,
    OwnerUpdate,
    Page,
    RateChange,
    RemainingChange,
    RestrictionIn,
    UserPublic,
)
from token_validator.views import counter, local, rate_public, refs

router = APIRouter(tags=["admin: owners"])

Search = Annotated[str | None, Query(max_length=100, description="Case-insensitive substring of the name.")]
Cascade = Annotated[bool, Query(description="Also delete the owner's tokens (and their usage).")]


def application_public(session: Session, row: Application, tokens: int, moment: Moment, zone: Any) -> ApplicationPublic:
    return ApplicationPublic(
        id=row.id, name=row.name, disabled=row.disabled, created_at=local(row.created_at, zone), tokens=tokens
    )


def user_public(session: Session, row: User, tokens: int, moment: Moment, zone: Any) -> UserPublic:
    base = application_public(session, row, tokens, moment, zone)  # type: ignore[arg-type]
    return UserPublic(**base.model_dump(), groups=refs(owners.groups_of(session, row.id)))


def group_public(session: Session, row: Group, tokens: int, moment: Moment, zone: Any) -> GroupPublic:
    base = application_public(session, row, tokens, moment, zone)  # type: ignore[arg-type]
    return GroupPublic(
        **base.model_dump(),
        quota=counter(row, moment, zone),
        rate=rate_public(rate_repo.get(session, "group", row.id)),
        members=owners.member_count(session, row.id),
    )


Show = Callable[[Session, Any, int, Moment, Any], BaseModel]


def _found(session: Session, model: OwnerModel, owner_id: int) -> Any:
    row = owners.get(session, model, owner_id)
    if row is None:
        raise Problem(404, "not_found", f"No {model.__tablename__[:-1]} with id {owner_id}.")
    return row


def _name_free(session: Session, model: OwnerModel, name: str, other_than: int | None = None) -> None:
    if owners.name_taken(session, model, name, other_than=other_than):
        raise Problem(409, "name_taken", f"There is already a {model.__tablename__[:-1]} named {name!r}.")


def _show(session: Session, model: OwnerModel, show: Show, row: Any, moment: Moment, zone: Any) -> Any:
    return show(session, row, owners.token_count(session, model, row.id), moment, zone)


def _list(
    db: sessionmaker[Session],
    model: OwnerModel,
    show: Show,
    moment: Moment,
    zone: Any,
    *,
    q: str | None,
    disabled: bool | None,
    page: int,
    per_page: int,
) -> dict[str, Any]:
    with db.begin() as session:
        found = owners.list_owners(session, model, q=q, disabled=disabled, page=page, per_page=per_page)
        items = [show(session, row[0], row[1], moment, zone) for row in found.items]
    return paged(found, items)


def _get(db: sessionmaker[Session], model: OwnerModel, show: Show, owner_id: int, moment: Moment, zone: Any) -> Any:
    with db.begin() as session:
        return _show(session, model, show, _found(session, model, owner_id), moment, zone)


def _update(
    db: sessionmaker[Session],
    model: OwnerModel,
    kind: str,
    show: Show,
    owner_id: int,
    body: OwnerUpdate,
    actor: Actor,
    moment: Moment,
    zone: Any,
) -> Any:
    with db.begin() as session:
        row = _found(session, model, owner_id)
        changes: dict[str, Any] = {}
        if body.name is not None and body.name != row.name:
            _name_free(session, model, body.name, other_than=owner_id)
            changes["name"] = {"from": row.name, "to": body.name}
            row.name = body.name
        if body.disabled is not None and body.disabled != row.disabled:
            changes["disabled"] = body.disabled
            row.disabled = body.disabled
        if changes:
            audited(session, actor, moment, f"{kind}.update", kind, owner_id, changes)
        return _show(session, model, show, row, moment, zone)


def _delete(
    db: sessionmaker[Session], model: OwnerModel, kind: str, owner_id: int, actor: Actor, moment: Moment, cascade: bool
) -> Response:
    with db.begin() as session:
        row = _found(session, model, owner_id)
        count = owners.token_count(session, model, owner_id)
        if count and not cascade:
            raise Problem(
                409, "has_tokens", f"The {kind} has {count} token(s); delete with ?cascade=true.", tokens=count
            )
        # Its webhook endpoints go with it (ON DELETE CASCADE); the trail says how many.
        hooks = webhooks.count_of(session, kind, owner_id)
        removed = owners.delete_owner(session, model, owner_id)
        details = {"name": row.name, "tokens_deleted": removed, "webhooks_deleted": hooks}
        audited(session, actor, moment, f"{kind}.delete", kind, owner_id, details)
    return Response(status_code=204)


_HAS_TOKENS: dict[int | str, dict[str, Any]] = {409: {"description": "The owner still has tokens (`has_tokens`)."}}


def _insert(session: Session, model: OwnerModel, kind: str, body: OwnerCreate, actor: AdminDep, moment: Moment) -> Any:
    _name_free(session, model, body.name)
    try:
        row = owners.create(session, model, name=body.name, disabled=body.disabled, now=moment.now)
    except IntegrityError:
        raise Problem(409, "name_taken", f"There is already a {kind} named {body.name!r}.") from None
    audited(session, actor, moment, f"{kind}.create", kind, row.id, {"name": body.name, "disabled": body.disabled})
    return row


@router.post("/applications", status_code=201, response_model=ApplicationPublic, summary="Create an application")
def create_application(body: OwnerCreate, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    with db.begin() as session:
        row = _insert(session, Application, "application", body, actor, moment)
        return application_public(session, row, 0, moment, zone)


@router.post("/users", status_code=201, response_model=UserPublic, summary="Create a user")
def create_user(body: OwnerCreate, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    with db.begin() as session:
        row = _insert(session, User, "user", body, actor, moment)
        return user_public(session, row, 0, moment, zone)


@router.post("/groups", status_code=201, response_model=GroupPublic, summary="Create a group (optionally with a quota)")
def create_group(body: GroupCreate, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    with db.begin() as session:
        row = _insert(session, Group, "group", body, actor, moment)
        row.restriction, row.quota = body.quota.type, body.quota.limit
        audited(session, actor, moment, "group.quota", "group", row.id, body.quota.model_dump())
        if body.rate is not None:
            rate_repo.set_rate(session, "group", row.id, (body.rate.limit, body.rate.per))
            audited(session, actor, moment, "group.rate", "group", row.id, {"rate": body.rate.model_dump()})
        return group_public(session, row, 0, moment, zone)


@router.get("/applications", response_model=Page[ApplicationPublic], summary="List applications")
def list_applications(
    _: AdminDep,
    db: DbDep,
    moment: MomentDep,
    zone: ZoneDep,
    q: Search = None,
    disabled: bool | None = None,
    page: PageNo = 1,
    per_page: PerPage = 50,
) -> Any:
    return _list(
        db, Application, application_public, moment, zone, q=q, disabled=disabled, page=page, per_page=per_page
    )


@router.get("/applications/{owner_id}", response_model=ApplicationPublic, summary="One application")
def get_application(owner_id: Id, _: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    return _get(db, Application, application_public, owner_id, moment, zone)


@router.patch(
    "/applications/{owner_id}", response_model=ApplicationPublic, summary="Rename, disable or enable a application"
)
def update_application(
    owner_id: Id, body: OwnerUpdate, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep
) -> Any:
    return _update(db, Application, "application", application_public, owner_id, body, actor, moment, zone)


@router.delete(
    "/applications/{owner_id}",
    status_code=204,
    summary="Delete a application (409 has_tokens unless cascade=true)",
    responses=_HAS_TOKENS,
)
def delete_application(
    owner_id: Id, actor: AdminDep, db: DbDep, moment: MomentDep, cascade: Cascade = False
) -> Response:
    return _delete(db, Application, "application", owner_id, actor, moment, cascade)


@router.get("/groups", response_model=Page[GroupPublic], summary="List groups")
def list_groups(
    _: AdminDep,
    db: DbDep,
    moment: MomentDep,
    zone: ZoneDep,
    q: Search = None,
    disabled: bool | None = None,
    page: PageNo = 1,
    per_page: PerPage = 50,
) -> Any:
    return _list(db, Group, group_public, moment, zone, q=q, disabled=disabled, page=page, per_page=per_page)


@router.get("/groups/{owner_id}", response_model=GroupPublic, summary="One group")
def get_group(owner_id: Id, _: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    return _get(db, Group, group_public, owner_id, moment, zone)


@router.patch("/groups/{owner_id}", response_model=GroupPublic, summary="Rename, disable or enable a group")
def update_group(owner_id: Id, body: OwnerUpdate, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    return _update(db, Group, "group", group_public, owner_id, body, actor, moment, zone)


@router.delete(
    "/groups/{owner_id}",
    status_code=204,
    summary="Delete a group (409 has_tokens unless cascade=true)",
    responses=_HAS_TOKENS,
)
def delete_group(owner_id: Id, actor: AdminDep, db: DbDep, moment: MomentDep, cascade: Cascade = False) -> Response:
    return _delete(db, Group, "group", owner_id, actor, moment, cascade)


@router.get("/users", response_model=Page[UserPublic], summary="List users")
def list_users(
    _: AdminDep,
    db: DbDep,
    moment: MomentDep,
    zone: ZoneDep,
    q: Search = None,
    disabled: bool | None = None,
    page: PageNo = 1,
    per_page: PerPage = 50,
) -> Any:
    return _list(db, User, user_public, moment, zone, q=q, disabled=disabled, page=page, per_page=per_page)


@router.get("/users/{owner_id}", response_model=UserPublic, summary="One user")
def get_user(owner_id: Id, _: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    return _get(db, User, user_public, owner_id, moment, zone)


@router.patch("/users/{owner_id}", response_model=UserPublic, summary="Rename, disable or enable a user")
def update_user(owner_id: Id, body: OwnerUpdate, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    return _update(db, User, "user", user_public, owner_id, body, actor, moment, zone)


@router.delete(
    "/users/{owner_id}",
    status_code=204,
    summary="Delete a user (409 has_tokens unless cascade=true)",
    responses=_HAS_TOKENS,
)
def delete_user(owner_id: Id, actor: AdminDep, db: DbDep, moment: MomentDep, cascade: Cascade = False) -> Response:
    return _delete(db, User, "user", owner_id, actor, moment, cascade)


@router.put(
    "/groups/{group_id}/rate",
    response_model=GroupPublic,
    summary="Set a group's rate limit, shared by its tokens and its members' user tokens; null takes it away",
)
def set_group_rate(
    group_id: Id, body: RateChange, request: Request, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep
) -> Any:
    rate = None if body.rate is None else (body.rate.limit, body.rate.per)
    with db.begin() as session:
        _found(session, Group, group_id)
        rate_repo.set_rate(session, "group", group_id, rate)
        details = {"rate": None if body.rate is None else body.rate.model_dump()}
        audited(session, actor, moment, "group.rate", "group", group_id, details)
        session.expire_all()
        public = _show(session, Group, group_public, _found(session, Group, group_id), moment, zone)
    request.app.state.rates.forget()
    return public


@router.put("/groups/{group_id}/quota", response_model=GroupPublic, summary="Change a group's shared quota")
def set_group_quota(
    group_id: Id, body: RestrictionIn, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep
) -> Any:
    with db.begin() as session:
        _found(session, Group, group_id)
        token_repo.set_restriction(session, Group, group_id, body.type, body.limit)
        audited(session, actor, moment, "group.quota", "group", group_id, body.model_dump())
        session.expire_all()
        return _show(session, Group, group_public, _found(session, Group, group_id), moment, zone)


@router.post(
    "/groups/{group_id}/quota/remaining", response_model=GroupPublic, summary="Set or grant a group's remaining uses"
)
def change_group_remaining(
    group_id: Id, body: RemainingChange, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep
) -> Any:
    with db.begin() as session:
        group = _found(session, Group, group_id)
        if group.restriction == "unlimited":
            raise Problem(409, "not_limited", "The group has no quota; set one first.")
        token_repo.change_remaining(session, Group, group_id, set_to=body.set, grant=body.grant, period=moment.period)
        audited(session, actor, moment, "group.remaining", "group", group_id, body.model_dump(exclude_none=True))
        session.expire_all()
        return _show(session, Group, group_public, _found(session, Group, group_id), moment, zone)


@router.get("/groups/{group_id}/members", response_model=Page[UserPublic], summary="Members of a group")
def list_members(
    group_id: Id, _: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep, page: PageNo = 1, per_page: PerPage = 50
) -> Any:
    with db.begin() as session:
        _found(session, Group, group_id)
        found = owners.members(session, group_id, page=page, per_page=per_page)
        items = [_show(session, User, user_public, row[0], moment, zone) for row in found.items]
    return paged(found, items)


@router.put("/groups/{group_id}/members/{user_id}", status_code=204, summary="Add a user to a group")
def add_member(group_id: Id, user_id: Id, actor: AdminDep, db: DbDep, moment: MomentDep) -> Response:
    with db.begin() as session:
        _found(session, Group, group_id)
        _found(session, User, user_id)
        if owners.add_member(session, group_id, user_id):
            audited(session, actor, moment, "group.member_add", "group", group_id, {"user_id": user_id})
    return Response(status_code=204)


@router.delete("/groups/{group_id}/members/{user_id}", status_code=204, summary="Remove a user from a group")
def remove_member(group_id: Id, user_id: Id, actor: AdminDep, db: DbDep, moment: MomentDep) -> Response:
    with db.begin() as session:
        _found(session, Group, group_id)
        if not owners.remove_member(session, group_id, user_id):
            raise Problem(404, "not_found", f"User {user_id} is not a member of group {group_id}.")
        audited(session, actor, moment, "group.member_remove", "group", group_id, {"user_id": user_id})
    return Response(status_code=204)
