"""The panel's sessions and its sign-in throttle, kept in the validator's database.

The panel owns no state: a session is a row here, so that a sign-out, a password change or a
deleted admin ends it for every panel process, and a panel restart forgets nothing. A session is
live while its row is not revoked nor expired, its admin still exists, and it began no earlier
than the admin's last password change (`live`: one lookup by primary key, joined to the admin by
primary key, asked on every panel request).

Failed sign-ins are rows too, counted per (username, client address) and per client address in
a sliding window. An attempt is counted *before* its password is checked (`begin_attempt`) and
forgiven if the password was right (`forgive`), so sign-ins sent at the same moment, through
one panel or several, cannot all slip under the limit while their passwords are being checked.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from token_validator.db import is_postgres
from token_validator.models import NAME, Admin, PanelSession, SignInAttempt
from token_validator.moment import as_utc
from token_validator.token_strings import digest

SESSION_ID_BYTES = 32  # 256 random bits, URL-safe base64 (43 characters)


@dataclass(frozen=True)
class Limits:
    per_name: int
    per_address: int
    window: timedelta


@dataclass(frozen=True)
class Attempt:
    """A sign-in let through: its row counts as a failure until it is forgiven."""

    id: int


@dataclass(frozen=True)
class Wait:
    """The limit is reached: nothing was tried, nothing recorded; try again in `seconds`."""

    seconds: int


@dataclass(frozen=True)
class Live:
    username: str
    created_at: datetime
    expires_at: datetime


def throttle_name(typed: str) -> str:
    return typed.lower()[:NAME]


def _wait(
    connection: Connection, where: list[ColumnElement[bool]], limit: int, now: datetime, window: timedelta
) -> int:
    """Seconds until fewer than `limit` attempts matching `where` remain in the window (0: now)."""
    oldest_counted = connection.execute(
        select(SignInAttempt.at)
        .where(*where, SignInAttempt.at > now - window)
        .order_by(SignInAttempt.at.desc())
        .offset(limit - 1)
        .limit(1)
    ).scalar_one_or_none()
    if oldest_counted is None:
        return 0
    until = as_utc(oldest_counted)
    assert until is not None
    return max(1, math.ceil((until + window - now).total_seconds()))


def _address_lock(connection: Connection, client_ip: str) -> None:
    """PostgreSQL: one sign-in at a time per client address, between counting and recording. On
    SQLite every transaction holds the write lock from BEGIN already (`db._begin_immediate`)."""
    if is_postgres(connection.engine):
        named = f"cartero.sign_in\n{client_ip}".encode()
        key = int.from_bytes(hashlib.sha256(named).digest()[:8], "big", signed=True)
        connection.execute(select(func.pg_advisory_xact_lock(key)))


def begin_attempt(engine: Engine, typed: str, client_ip: str, now: datetime, limits: Limits) -> Attempt | Wait:
    """Either a `Wait` (the limit is reached), or the attempt, recorded as a failure."""
    name = throttle_name(typed)
    with engine.begin() as connection:
        _address_lock(connection, client_ip)
        by_address = [SignInAttempt.client_ip == client_ip]
        by_name = [SignInAttempt.username == name, SignInAttempt.client_ip == client_ip]
        wait = max(
            _wait(connection, by_address, limits.per_address, now, limits.window),
            _wait(connection, by_name, limits.per_name, now, limits.window),
        )
        if wait:
            return Wait(wait)
        row = connection.execute(
            insert(SignInAttempt).values(username=name, client_ip=client_ip, at=now).returning(SignInAttempt.id)
        ).scalar_one()
    return Attempt(int(row))


def forgive(session: Session, typed: str, client_ip: str) -> None:
    """The password was right: this name's failures from this address are forgotten (the
    address's count of other names stays)."""
    name = throttle_name(typed)
    session.execute(delete(SignInAttempt).where(SignInAttempt.username == name, SignInAttempt.client_ip == client_ip))


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def start(session: Session, admin: Admin, now: datetime, lifetime: timedelta, client_ip: str | None) -> str:
    """A new session for `admin`; its id, which only the caller ever sees."""
    session_id = new_session_id()
    session.add(
        PanelSession(
            digest=digest(session_id),
            admin_id=admin.id,
            created_at=now,
            expires_at=now + lifetime,
            client_ip=client_ip,
        )
    )
    return session_id


def live(connection: Connection, session_id: str, now: datetime) -> Live | None:
    """The session's admin and times while the session is live; None once it has ended."""
    row = connection.execute(
        select(Admin.username, PanelSession.created_at, PanelSession.expires_at)
        .join(Admin, Admin.id == PanelSession.admin_id)
        .where(
            PanelSession.digest == digest(session_id),
            PanelSession.revoked_at.is_(None),
            PanelSession.expires_at > now,
            PanelSession.created_at >= Admin.password_changed_at,
        )
    ).one_or_none()
    if row is None:
        return None
    created, expires = as_utc(row.created_at), as_utc(row.expires_at)
    assert created is not None and expires is not None
    return Live(str(row.username), created, expires)


def end(connection: Connection, session_id: str, now: datetime) -> Live | None:
    """Revoke the session (a sign-out); what it was, if it was live."""
    was = live(connection, session_id, now)
    if was is not None:
        connection.execute(
            update(PanelSession)
            .where(PanelSession.digest == digest(session_id), PanelSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return was


def end_all_of(session: Session, admin_id: int, now: datetime) -> int:
    """Revoke every session of an admin (a new password); how many were still open."""
    result = session.execute(
        update(PanelSession)
        .where(PanelSession.admin_id == admin_id, PanelSession.revoked_at.is_(None), PanelSession.expires_at > now)
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def prune(engine: Engine, now: datetime, window: timedelta) -> int:
    """Forget expired sessions (revoked or not: both are dead) and failures out of the window."""
    with engine.begin() as connection:
        sessions = connection.execute(delete(PanelSession).where(PanelSession.expires_at <= now))
        attempts = connection.execute(delete(SignInAttempt).where(SignInAttempt.at <= now - window))
    return int(sessions.rowcount or 0) + int(attempts.rowcount or 0)
