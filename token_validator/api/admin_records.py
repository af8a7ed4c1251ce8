"""Admin API: refusals, the audit trail and admin accounts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy.exc import IntegrityError

from cartero_common.http import Problem
from token_validator.api.common import Instant, PageNo, PerPage, audited, paged
from token_validator.deps import AdminDep, DbDep, MomentDep, ZoneDep
from token_validator.repository import admins
from token_validator.repository.records import AuditFilter, RefusalFilter, audit_events, refusals
from token_validator.schemas import (
    AdminCreate,
    AdminPublic,
    AuditPublic,
    DeadLetterAction,
    Page,
    PasswordChange,
    RefusalPublic,
)
from token_validator.views import local

router = APIRouter(tags=["admin: records and accounts"])

Username = Annotated[str, Path(max_length=100, pattern=r"^[A-Za-z0-9._@-]+$")]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)


@router.get("/refusals", response_model=Page[RefusalPublic], summary="Refusals, newest first")
def list_refusals(
    _: AdminDep,
    db: DbDep,
    zone: ZoneDep,
    token_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    prefix: Annotated[str | None, Query(max_length=16)] = None,
    code: Annotated[str | None, Query(max_length=40)] = None,
    since: Instant = None,
    until: Instant = None,
    page: PageNo = 1,
    per_page: PerPage = 50,
) -> Any:
    where = RefusalFilter(token_id=token_id, prefix=prefix, code=code, since=_utc(since), until=_utc(until))
    with db.begin() as session:
        found = refusals(session, where, page=page, per_page=per_page)
        items = [
            RefusalPublic.model_validate(row[0]).model_copy(update={"at": local(row[0].at, zone)})
            for row in found.items
        ]
    return paged(found, items)


@router.get("/audit", response_model=Page[AuditPublic], summary="The audit trail of admin actions, newest first")
def list_audit(
    _: AdminDep,
    db: DbDep,
    zone: ZoneDep,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. token.create, user.delete")] = None,
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    since: Instant = None,
    until: Instant = None,
    page: PageNo = 1,
    per_page: PerPage = 50,
) -> Any:
    where = AuditFilter(actor, action, target_type, target_id, _utc(since), _utc(until))
    with db.begin() as session:
        found = audit_events(session, where, page=page, per_page=per_page)
        items = [
            AuditPublic.model_validate(row[0]).model_copy(update={"at": local(row[0].at, zone)}) for row in found.items
        ]
    return paged(found, items)


@router.post(
    "/audit",
    status_code=204,
    summary="Record an admin's action done elsewhere (the panel's dead letters) in the audit trail",
)
def record_action(body: DeadLetterAction, actor: AdminDep, db: DbDep, moment: MomentDep) -> Response:
    details = body.model_dump(exclude={"action", "queue"})
    with db.begin() as session:
        audited(session, actor, moment, body.action, "dead_letter_queue", body.queue, details)
    return Response(status_code=204)


@router.get("/admins", response_model=list[AdminPublic], summary="Admin accounts")
def list_admins(_: AdminDep, db: DbDep) -> Any:
    with db.begin() as session:
        return [AdminPublic.model_validate(a) for a in admins.list_admins(session)]


@router.post("/admins", status_code=201, response_model=AdminPublic, summary="Create an admin account")
def create_admin(body: AdminCreate, actor: AdminDep, db: DbDep, moment: MomentDep) -> Any:
    with db.begin() as session:
        if admins.by_username(session, body.username) is not None:
            raise Problem(409, "name_taken", f"There is already an admin named {body.username!r}.")
        try:
            admin = admins.create(session, username=body.username, password=body.password, now=moment.now)
        except IntegrityError:
            raise Problem(409, "name_taken", f"There is already an admin named {body.username!r}.") from None
        audited(session, actor, moment, "admin.create", "admin", body.username)
        return AdminPublic.model_validate(admin)


@router.put(
    "/admins/{username}/password",
    status_code=204,
    summary="Set an admin's password; every panel session the admin has ends",
)
def change_password(
    username: Username, body: PasswordChange, actor: AdminDep, db: DbDep, moment: MomentDep
) -> Response:
    with db.begin() as session:
        admin = admins.by_username(session, username)
        if admin is None:
            raise Problem(404, "not_found", f"No admin named {username!r}.")
        admins.set_password(session, admin, body.password, moment.now)
        audited(session, actor, moment, "admin.password", "admin", username)
    return Response(status_code=204)


@router.delete(
    "/admins/{username}",
    status_code=204,
    summary="Delete an admin account (not the last one) and end its panel sessions",
)
def delete_admin(username: Username, actor: AdminDep, db: DbDep, moment: MomentDep) -> Response:
    with db.begin() as session:
        if admins.by_username(session, username) is None:
            raise Problem(404, "not_found", f"No admin named {username!r}.")
        if admins.count(session) <= 1:
            raise Problem(409, "last_admin", "The last admin account cannot be deleted.")
        admins.remove(session, username)
        audited(session, actor, moment, "admin.delete", "admin", username)
    return Response(status_code=204)
