"""The consumers' dedupe ledger: which message ids a consumer has already delivered.

One table, `processed_messages`, keyed by (queue, message id), with its own Alembic history
(`cartero_common/consume/ledger_alembic`, version table `alembic_version_consumer_ledger`), so
consumer_sms and consumer_email can keep it in separate SQLite files or share one PostgreSQL
database without stepping on each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import DateTime, Engine, String, bindparam, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cartero_common.db import insert_ignoring_duplicates_statement, migrate, new_metadata

MIGRATIONS = Path(__file__).parent / "ledger_alembic"
VERSION_TABLE = "alembic_version_consumer_ledger"


class LedgerBase(DeclarativeBase):
    metadata = new_metadata()


class ProcessedMessage(LedgerBase):
    __tablename__ = "processed_messages"

    queue: Mapped[str] = mapped_column(String(200), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Which provider took it (a gateway URL without credentials, an SMTP host:port), so that a
    # redelivery's `consumido` names the same one. None: recorded before providers were named.
    provider: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Processed(NamedTuple):
    at: datetime
    provider: str | None = None


def migrate_ledger(url: str, runtime_role: str = "") -> None:
    migrate(script_location=MIGRATIONS, url=url, version_table=VERSION_TABLE, runtime_role=runtime_role)


class Ledger:
    """Reads and writes one queue's processed ids; each call is its own transaction. Core
    statements on a connection, not ORM sessions, built once: this runs twice per batch on the
    hot path, and building them cost more than running them."""

    def __init__(self, engine: Engine, queue: str) -> None:
        self.engine = engine
        self.queue = queue
        self._lookup = select(
            ProcessedMessage.message_id, ProcessedMessage.processed_at, ProcessedMessage.provider
        ).where(
            ProcessedMessage.queue == queue,
            ProcessedMessage.message_id.in_(bindparam("ids", expanding=True)),
        )
        self._insert = insert_ignoring_duplicates_statement(
            engine.dialect.name, ProcessedMessage, unique=["queue", "message_id"]
        )

    def lookup(self, message_ids: Iterable[str]) -> dict[str, Processed]:
        """Which of `message_ids` were delivered already: when (UTC), and by which provider."""
        ids = list(dict.fromkeys(message_ids))
        if not ids:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(self._lookup, {"ids": ids})
            return {message_id: Processed(_utc(at), provider) for message_id, at, provider in rows}

    def record(self, done: Iterable[tuple[str, datetime, str | None]]) -> None:
        """(id, when, provider or None) for each message delivered; an id already recorded keeps
        its first row."""
        rows = [
            {"queue": self.queue, "message_id": mid, "processed_at": at.astimezone(UTC), "provider": provider}
            for mid, at, provider in done
        ]
        if not rows:
            return
        with self.engine.begin() as connection:
            connection.execute(self._insert, rows)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; they were stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
