"""Database plumbing: engines for SQLite (embedded) and PostgreSQL (production), and Alembic."""

from __future__ import annotations

import fcntl
import sqlite3
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Executable, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from cartero_common.pg_roles import grant_runtime

# Stable constraint names, so Alembic migrations can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """Each service's declarative base uses its own metadata with the shared naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def _sqlite_file(database: str | None) -> Path | None:
    """The SQLite database's file, its folder created if missing; None in memory."""
    if not database or database == ":memory:":
        return None
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _sqlite_file(parsed.database)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _: object) -> None:
            # WAL lets the read API query while the consumer writes; foreign keys are off by default.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def _sqlite_migration_lock(database: str | None) -> Iterator[None]:
    """Processes that start together on one SQLite file (consumers the monitor scales up at once)
    would race to create the same tables, and all but one fail: an exclusive lock on a file
    beside the database lets one migrate while the others wait and then find nothing to do."""
    path = _sqlite_file(database)
    if path is None:
        yield
        return
    with open(f"{path}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def migrate(*, script_location: Path, url: str, version_table: str, runtime_role: str = "") -> None:
    """`alembic upgrade head` for one service; each keeps its own version table so services can
    share one database. With `runtime_role` (PostgreSQL, migrating as the database's owner), that
    role is then granted row access to the tables and nothing more (`pg_roles.grant_runtime`);
    SQLite has no roles and ignores it."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["version_table"] = version_table
    config.attributes["configure_logger"] = False
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        with _sqlite_migration_lock(parsed.database):
            command.upgrade(config, "head")
        return
    # Replicas that start together (consumers scaled up at once) would race to create the same
    # tables: the first takes this lock and migrates, the others wait and find nothing to do.
    lock_key = zlib.crc32(version_table.encode())
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key})
            connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if runtime_role:
                    grant_runtime(connection, runtime_role)
                connection.commit()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key})
                connection.commit()
    finally:
        engine.dispose()


def run_alembic_env(target_metadata: MetaData) -> None:
    """The body of every service's `alembic/env.py` (online mode only: we always have a URL)."""
    from alembic import context

    config = context.config
    version_table = config.attributes.get("version_table", "alembic_version")
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.connect() as connection:
            _run(context, connection, target_metadata, version_table)
        engine.dispose()
    else:
        _run(context, connectable, target_metadata, version_table)


def _run(context: Any, connection: Any, target_metadata: MetaData, version_table: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def insert_ignoring_duplicates(
    target: Session | Connection, table: Any, rows: list[dict[str, Any]], *, unique: list[str]
) -> None:
    """`INSERT … ON CONFLICT (unique) DO NOTHING` for SQLite and PostgreSQL: a row that is
    already there (a redelivery) is skipped without a round trip to look for it first."""
    if not rows:
        return
    dialect = (target.dialect if isinstance(target, Connection) else target.get_bind().dialect).name
    target.execute(insert_ignoring_duplicates_statement(dialect, table, unique=unique), rows)


def insert_ignoring_duplicates_statement(dialect: str, table: Any, *, unique: list[str]) -> Executable:
    """The statement `insert_ignoring_duplicates` runs, to build once where it runs per batch."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=unique)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=unique)
    raise NotImplementedError(f"no insert-ignoring-duplicates for {dialect}")
