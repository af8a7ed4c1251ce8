"""The validator's engine: writers serialized on SQLite, no per-checkout ping on PostgreSQL."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError

from cartero_common.db import make_engine

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
