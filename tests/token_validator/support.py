"""A real token validator for tests: migrated database, the app served on a free port, and plain
functions to make owners and tokens directly in its database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from cartero_common.clock import Clock, system_clock
from cartero_common.db import make_sessionmaker
from tests.support import served
from token_validator.__main__ import run_migrations
from token_validator.app import create_app
from token_validator.config import Settings
from token_validator.db import Database, open_database
from token_validator.issuing import issue
from token_validator.models import Group, Token
from token_validator.moment import Moment
from token_validator.quota import PREPARED_STATEMENTS
from token_validator.repository import owners, rates
from token_validator.repository.owners import OWNER_MODELS
from token_validator.repository.rates import Per
from token_validator.token_strings import Kind

SERVICE_KEY = "service-key-for-tests-0123456789"
ADMIN_KEY = "admin-key-for-tests-9876543210"
TABLES = (
    "rate_limits",
    "webhook_endpoints",
    "idempotency_keys",
    "usages",
    "refusals",
    "audit_events",
    "tokens",
    "group_members",
    "groups",
    "users",
    "applications",
    "panel_sessions",
    "sign_in_attempts",
    "admins",
)


def settings_for(database_url: str, **extra: Any) -> Settings:
    return Settings(
        database_url=database_url, validator_service_key=SERVICE_KEY, validator_admin_key=ADMIN_KEY, **extra
    )


def migrated(database_url: str) -> Database:
    """The validator's schema at head, emptied (tests share one database per run)."""
    run_migrations(settings_for(database_url))
    db = open_database(database_url, prepared=PREPARED_STATEMENTS)
    with db.engine.begin() as connection:
        for table in TABLES:
            connection.execute(text(f"DELETE FROM {table}"))
    return db


@dataclass
class Tokens:
    """Makes owners and tokens the way the admin API does, straight in the database."""

    db: Database
    clock: Clock = system_clock
    zone: str = "Europe/Madrid"

    def moment(self) -> Moment:
        return Moment.at(self.clock(), ZoneInfo(self.zone))

    def owner(self, kind: str, name: str, *, group_quota: tuple[str, int] | None = None) -> int:
        model = OWNER_MODELS[kind]
        with make_sessionmaker(self.db.engine).begin() as session:
            found = owners.by_name(session, model, name) or owners.create(
                session, model, name=name, now=self.moment().now
            )
            if group_quota is not None:
                found.restriction, found.quota = group_quota
            return int(found.id)

    def join(self, group: str, user: str) -> None:
        group_id, user_id = self.owner("group", group), self.owner("user", user)
        with make_sessionmaker(self.db.engine).begin() as session:
            owners.add_member(session, group_id, user_id)

    def disable(self, kind: str, name: str, disabled: bool = True) -> None:
        model = OWNER_MODELS[kind]
        with make_sessionmaker(self.db.engine).begin() as session:
            owners.by_name(session, model, name).disabled = disabled

    def make(
        self,
        kind: Kind = "application",
        owner: str = "app",
        *,
        actions: str = "*",
        restriction: str = "unlimited",
        limit: int | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[str, int]:
        owner_id = self.owner(kind, owner)
        with make_sessionmaker(self.db.engine).begin() as session:
            plaintext, token = issue(
                session,
                kind=kind,
                owner_id=owner_id,
                actions=actions,
                restriction=restriction,
                quota=limit,
                expires_at=expires_at.astimezone(UTC) if expires_at else None,
                name=None,
                actor="tests",
                client_ip=None,
                moment=self.moment(),
            )
            return plaintext, int(token.id)

    def rate(
        self, limit: int | None, per: Per = "second", *, token_id: int | None = None, group: str | None = None
    ) -> None:
        """Give a token (by id) or a group (by name) a rate limit, or none (`limit=None`)."""
        with make_sessionmaker(self.db.engine).begin() as session:
            if group is not None:
                rates.set_rate(session, "group", self.owner("group", group), None if limit is None else (limit, per))
            elif token_id is not None:
                rates.set_rate(session, "token", token_id, None if limit is None else (limit, per))

    def revoke(self, token_id: int) -> None:
        with make_sessionmaker(self.db.engine).begin() as session:
            session.get(Token, token_id).revoked_at = self.moment().now

    def used(self, token_id: int) -> int:
        with self.db.engine.connect() as connection:
            return int(connection.execute(select(Token.used).where(Token.id == token_id)).scalar_one())

    def group_used(self, name: str) -> int:
        with self.db.engine.connect() as connection:
            return int(connection.execute(select(Group.used).where(Group.name == name)).scalar_one())


@dataclass
class RunningValidator:
    url: str
    db: Database
    tokens: Tokens


@contextmanager
def serve_validator(database_url: str, clock: Clock = system_clock, **settings: Any) -> Iterator[RunningValidator]:
    """The validator app served by uvicorn on a free port, in a thread of this process."""
    db = migrated(database_url)
    try:
        with served(create_app(settings_for(database_url, **settings), clock=clock, db=db)) as url:
            yield RunningValidator(url, db, Tokens(db, clock))
    finally:
        db.dispose()
