"""Server-side prepared statements for the hot path on PostgreSQL.

psycopg2 sends every statement as text, so PostgreSQL would plan the decision statement anew
each time, and planning it takes longer than running it. Each connection of the hot-path pool
PREPAREs it once (generic plan) and then only EXECUTEs it with new values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ClauseElement

_NAMED = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Prepared:
    name: str
    body: str  # the statement with $1, $2, … (typed casts kept, so PREPARE knows every type)
    order: tuple[str, ...]  # parameter name of $1, $2, …
    constants: dict[str, Any]  # values SQLAlchemy bound into the statement itself

    @property
    def execute_sql(self) -> str:
        return f"EXECUTE {self.name}({', '.join(['%s'] * len(self.order))})"

    def run(self, connection: Connection, params: dict[str, Any]) -> Row[Any] | None:
        values = tuple(params[name] if name in params else self.constants[name] for name in self.order)
        row: Row[Any] | None = connection.exec_driver_sql(self.execute_sql, values).one_or_none()
        return row


def prepare(name: str, statement: ClauseElement) -> Prepared:
    compiled = statement.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    order: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in order:
            order.append(key)
        return f"${order.index(key) + 1}"

    body = _NAMED.sub(numbered, str(compiled)).replace("%%", "%")
    constants = {key: value for key, value in compiled.params.items() if value is not None}
    return Prepared(name, body, tuple(order), constants)


def prepare_on_connect(engine: Engine, statements: list[Prepared], *, synchronous_commit: bool) -> None:
    @event.listens_for(engine, "connect")
    def _prepare(dbapi_connection: Any, _: object) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_generic_plan")
            if not synchronous_commit:
                # A spend holds its token's row lock until it commits; not waiting for the WAL flush
                # there is what lets one busy token take thousands of uses a second. A database
                # crash can forget the last fraction of a second of spends (never corrupt them).
                # Ref: https://www.postgresql.org/docs/current/wal-async-commit.html
                cursor.execute("SET synchronous_commit = off")
            for statement in statements:
                cursor.execute(f"PREPARE {statement.name} AS {statement.body}")
        dbapi_connection.autocommit = autocommit
