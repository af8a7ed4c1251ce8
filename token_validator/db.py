"""The validator's engines: writers serialized on SQLite; on PostgreSQL, a second pool of
autocommit connections for the single statements of the hot path."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

from cartero_common.db import make_engine
from token_validator.prepared import Prepared, prepare_on_connect

P = ParamSpec("P")
R = TypeVar("R")


def make_validator_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = make_engine(url, **kwargs)
        _begin_immediate(engine)
        return engine
    # A ping before every checkout would double the round trips of `/v1/validate`; a connection
    # that died is retried once by the caller instead (see `retry_once`).
    kwargs.setdefault("pool_pre_ping", False)
    return make_engine(url, **kwargs)


def make_hot_engine(
    url: str, *, prepared: Sequence[Prepared], synchronous_commit: bool = True, **kwargs: Any
) -> Engine | None:
    """PostgreSQL only: connections in autocommit mode, where one statement is one transaction and
    one round trip (no BEGIN, no COMMIT), with the hot path's statements (`prepared`, which the
    quota package declares and the wiring hands over) prepared."""
    if url.startswith("sqlite"):
        return None
    engine = make_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=False, **kwargs)
    prepare_on_connect(engine, list(prepared), synchronous_commit=synchronous_commit)
    return engine


def _begin_immediate(engine: Engine) -> None:
    """Every SQLite transaction takes the write lock at BEGIN, so two spenders (threads or
    processes) queue on the busy timeout instead of both reading and then one failing to upgrade.

    Ref: https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    """

    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection: sqlite3.Connection, _: object) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _immediate(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def retry_once(work: Callable[P, R]) -> Callable[P, R]:
    """Run `work` again once if the database connection it used had died (server restart, idle
    timeout): the pool drops it and the second try gets a fresh one."""

    @functools.wraps(work)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return work(*args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return work(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Database:
    engine: Engine  # transactions
    hot: Engine | None = None  # PostgreSQL: autocommit connections with prepared statements

    @contextmanager
    def single(self) -> Iterator[Connection]:
        """A connection for statements that need no transaction around them."""
        if self.hot is not None:
            with self.hot.connect() as connection:
                yield connection
        else:
            with self.engine.begin() as connection:
                yield connection

    def dispose(self) -> None:
        self.engine.dispose()
        if self.hot is not None:
            self.hot.dispose()


def open_database(url: str, *, prepared: Sequence[Prepared], synchronous_commit: bool = True) -> Database:
    """`prepared`: the hot path's statements (`quota.PREPARED_STATEMENTS`); `synchronous_commit`
    applies to its single-statement spends (PostgreSQL)."""
    hot = make_hot_engine(url, prepared=prepared, synchronous_commit=synchronous_commit)
    return Database(make_validator_engine(url), hot)
