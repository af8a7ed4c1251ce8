"""Admin accounts (for the panel's sign-in): usernames and scrypt password hashes. Deleting one
deletes its panel sessions with it (ON DELETE CASCADE)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from token_validator import panel_sessions
from token_validator.models import Admin
from token_validator.passwords import hash_password
from token_validator.repository.pages import affected


def by_username(session: Session, username: str) -> Admin | None:
    return session.execute(select(Admin).where(Admin.username == username)).scalar_one_or_none()


def list_admins(session: Session) -> list[Admin]:
    return list(session.execute(select(Admin).order_by(Admin.username)).scalars())


def count(session: Session) -> int:
    return int(session.execute(select(func.count(Admin.id))).scalar_one())


def create(session: Session, *, username: str, password: str, now: datetime) -> Admin:
    admin = Admin(username=username, password_hash=hash_password(password), created_at=now, password_changed_at=now)
    session.add(admin)
    session.flush()
    return admin


def set_password(session: Session, admin: Admin, password: str, now: datetime) -> None:
    """A new password ends every panel session the admin has: one begun before `now` is no longer
    live (`panel_sessions.live`), and the open ones are revoked outright as well."""
    admin.password_hash = hash_password(password)
    admin.password_changed_at = now
    panel_sessions.end_all_of(session, admin.id, now)


def remove(session: Session, username: str) -> bool:
    return bool(affected(session.execute(delete(Admin).where(Admin.username == username))))
