"""Admin API: the panel's sessions. Sign in (throttled), ask whether a session is still live,
sign out. The rules are in `token_validator.panel_sessions`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response

from cartero_common.http import Problem, from_state
from token_validator import audit, panel_sessions
from token_validator.config import Settings
from token_validator.deps import AdminDep, DatabaseDep, DbDep, MomentDep, ZoneDep
from token_validator.models import Admin
from token_validator.passwords import verify_password
from token_validator.repository import admins
from token_validator.schemas import USERNAME_MAX, SessionCreate, SessionLive, SessionPublic
from token_validator.views import local

router = APIRouter(tags=["admin: panel sessions"])

SESSION_HEADER = "X-Cartero-Session"
# In a header rather than the path, so the id never lands in a URL (and so in no proxy's log).
SessionId = Annotated[
    str,
    Header(
        alias=SESSION_HEADER,
        min_length=20,
        max_length=100,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The session id `POST /v1/admin/sessions` answered.",
    ),
]
SettingsDep = Annotated[Settings, Depends(from_state("settings"))]
ENDED = {"description": "No such session, or it has ended (`session_ended`)."}


def _limits(settings: Settings) -> panel_sessions.Limits:
    return panel_sessions.Limits(
        per_name=settings.panel_signin_max_failures,
        per_address=settings.panel_signin_max_failures_per_address,
        window=timedelta(seconds=settings.panel_signin_window_seconds),
    )


def _ended() -> Problem:
    return Problem(404, "session_ended", "This session has ended (signed out, a new password, or no such admin).")


@router.post(
    "/sessions",
    # 200, as before sessions were kept here, so scripts that check a password this way still work.
    response_model=SessionPublic,
    summary="Sign an admin in (the panel's sign-in): check the password and start a session",
    responses={
        401: {"description": "Wrong username or password (`invalid_credentials`)."},
        429: {
            "description": "Too many failed sign-ins for this name from this address, or from this address "
            "(`too_many_sign_ins`); nothing was checked. `Retry-After` says when to try again.",
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
        },
    },
)
def sign_in(
    body: SessionCreate,
    actor: AdminDep,
    database: DatabaseDep,
    db: DbDep,
    moment: MomentDep,
    zone: ZoneDep,
    settings: SettingsDep,
) -> Any:
    typed = body.username
    client_ip = body.client_address or actor.client_ip or "-"
    attempt = panel_sessions.begin_attempt(database.engine, typed, client_ip, moment.now, _limits(settings))
    if isinstance(attempt, panel_sessions.Wait):
        raise Problem(
            429,
            "too_many_sign_ins",
            "Too many failed sign-ins; try again later.",
            headers={"Retry-After": str(attempt.seconds)},
            retry_after=attempt.seconds,
        )
    fits = len(typed) <= USERNAME_MAX
    with db.begin() as session:
        found = admins.by_username(session, typed) if fits else None
        admin_id, stored_hash = (found.id, found.password_hash) if found else (None, None)
    # Checked outside any transaction (scrypt takes tens of milliseconds, and a SQLite
    # transaction holds the write lock), and even for an unknown name, so the answer takes as
    # long either way.
    valid = fits and verify_password(body.password, stored_hash) and admin_id is not None
    with db.begin() as session:
        admin = session.get(Admin, admin_id) if valid else None
        # A password changed (or an admin deleted) while this one was being checked: a failure.
        if admin is not None and admin.password_hash == stored_hash:
            admin.last_sign_in_at = moment.now
            panel_sessions.forgive(session, typed, client_ip)
            lifetime = timedelta(minutes=settings.panel_session_minutes)
            session_id = panel_sessions.start(session, admin, moment.now, lifetime, client_ip)
            audit.record(
                session,
                at=moment.now,
                actor=admin.username,
                action="admin.sign_in",
                target_type="admin",
                target_id=admin.username,
                client_ip=client_ip,
            )
            answer = SessionPublic(
                id=session_id,
                username=admin.username,
                signed_in_at=local(moment.now, zone),
                expires_at=local(moment.now + lifetime, zone),
            )
        else:
            answer = None
            # Nobody signed in: the name typed is what was tried, not who tried it.
            audit.record(
                session,
                at=moment.now,
                actor=audit.ANONYMOUS,
                action="admin.sign_in_failed",
                target_type="admin",
                details={"username": typed},
                client_ip=client_ip,
            )
    # Answered after the audit event is committed: a refused sign-in is recorded either way.
    if not fits:
        raise Problem(
            422,
            "invalid_request",
            f"An admin's username has at most {USERNAME_MAX} characters.",
            errors=[{"field": "username", "message": f"at most {USERNAME_MAX} characters"}],
        )
    if answer is None:
        raise Problem(401, "invalid_credentials", "Wrong username or password.")
    return answer


@router.get(
    "/sessions/current",
    response_model=SessionLive,
    summary="The admin of a live session (the panel asks on every request)",
    responses={404: ENDED},
)
def current_session(session_id: SessionId, _: AdminDep, database: DatabaseDep, moment: MomentDep, zone: ZoneDep) -> Any:
    with database.single() as connection:
        found = panel_sessions.live(connection, session_id, moment.now)
    if found is None:
        raise _ended()
    return SessionLive(
        username=found.username,
        signed_in_at=local(found.created_at, zone),
        expires_at=local(found.expires_at, zone),
    )


@router.delete(
    "/sessions/current",
    status_code=204,
    summary="Sign out: end a session (done already, or no such session: 204 too)",
)
def end_session(session_id: SessionId, actor: AdminDep, db: DbDep, moment: MomentDep) -> Response:
    with db.begin() as session:
        ended = panel_sessions.end(session.connection(), session_id, moment.now)
        if ended is not None:
            audit.record(
                session,
                at=moment.now,
                actor=ended.username,
                action="admin.sign_out",
                target_type="admin",
                target_id=ended.username,
                client_ip=actor.client_ip,
            )
    return Response(status_code=204)
