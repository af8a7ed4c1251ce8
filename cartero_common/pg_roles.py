"""PostgreSQL roles per service: an owner role that migrates, a runtime role that only reads and
writes rows.

Two idempotent steps, so compose runs both on every `up`:

- `provision`, as the superuser (`python -m cartero_common postgres-setup`): for each service's
  database, the owner role `<database>_owner` and the runtime role `<database>`, both LOGIN and
  nothing more, their passwords set from the environment each time (so `.env` stays the one
  place they are kept); the database created if missing and owned by the owner role; CONNECT to
  it for nobody but its two roles; and whatever its `public` schema already holds handed to the
  owner (a deployment whose tables the superuser created migrates on as the owner).
- `grant_runtime`, as the owner, right after `alembic upgrade head` (`migrate` runs it when the
  service's `DATABASE_RUNTIME_ROLE` is set; `python -m cartero_common db-grants` runs it by hand):
  the runtime role may select, insert, update and delete the rows of every table in the schema,
  of tables later migrations add too (default privileges), except where `RUNTIME_PRIVILEGES`
  below says less; it may create, alter, drop or truncate nothing.

SQLite has no roles: neither step does anything there.
Ref: https://www.postgresql.org/docs/current/ddl-priv.html
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

log = logging.getLogger("cartero_common.pg_roles")

SELECT, INSERT, UPDATE, DELETE = "SELECT", "INSERT", "UPDATE", "DELETE"
DML: frozenset[str] = frozenset({SELECT, INSERT, UPDATE, DELETE})

# Where a runtime role gets less than DML, by table name: each service's tables live in a
# database of their own, so a name is unambiguous. A trailing `*` matches a prefix.
RUNTIME_PRIVILEGES: Mapping[str, frozenset[str]] = {
    # Alembic's version tables: a consumer reads its own when it starts (is the ledger current?);
    # only migrations write them.
    "alembic_version*": frozenset({SELECT}),
    # token_validator's audit trail: appended to, and read by the admin API; never rewritten.
    "audit_events": frozenset({SELECT, INSERT}),
}

_ORDER = (SELECT, INSERT, UPDATE, DELETE)
# The relations a GRANT ON TABLE covers, and the keyword that changes each one's owner.
_RELATION_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}
_VIEW_KINDS = frozenset({"v", "m"})
_ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


class RoleError(Exception):
    """A role or database setting that would defeat the separation, or a step PostgreSQL refused."""


def runtime_privileges(table: str) -> frozenset[str]:
    """What the runtime role may do on `table`: DML unless `RUNTIME_PRIVILEGES` says less."""
    for pattern, privileges in RUNTIME_PRIVILEGES.items():
        if table == pattern or (pattern.endswith("*") and table.startswith(pattern[:-1])):
            return privileges
    return DML


def _privilege_list(privileges: frozenset[str]) -> str:
    return ", ".join(p for p in _ORDER if p in privileges)


def _quote(connection: Connection, name: str) -> str:
    return str(connection.dialect.identifier_preparer.quote_identifier(name))


def grant_runtime(connection: Connection, runtime_role: str) -> dict[str, frozenset[str]]:
    """Run as the database's owner after migrating: the runtime role's privileges on every table
    of the current schema (what it got on each, returned), on their sequences, and on the tables
    and sequences this owner creates later. Idempotent; the caller commits."""
    if connection.dialect.name != "postgresql":
        return {}
    me, database, schema = connection.execute(text("SELECT current_user, current_database(), current_schema()")).one()
    role = connection.execute(
        text("SELECT rolsuper, pg_has_role(rolname, current_user, 'MEMBER') FROM pg_roles WHERE rolname = :name"),
        {"name": runtime_role},
    ).one_or_none()
    if role is None:
        raise RoleError(f"the runtime role {runtime_role!r} does not exist (postgres-setup creates it)")
    if role.rolsuper:
        raise RoleError(f"the runtime role {runtime_role!r} is a superuser, above every privilege")
    if runtime_role == me or role.pg_has_role:
        raise RoleError(f"the runtime role {runtime_role!r} is, or is a member of, {me!r}, the role migrating")
    q_role, q_schema = _quote(connection, runtime_role), _quote(connection, schema)
    q_database = _quote(connection, database)
    statements = [
        # A new database lets every role connect and make temporary tables: only its two may connect.
        f"REVOKE ALL ON DATABASE {q_database} FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {q_database} TO {q_role}",
        f"REVOKE CREATE ON SCHEMA {q_schema} FROM PUBLIC",
        f"REVOKE CREATE ON SCHEMA {q_schema} FROM {q_role}",
        f"GRANT USAGE ON SCHEMA {q_schema} TO {q_role}",
    ]
    tables = connection.execute(
        text(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = :schema AND c.relkind = ANY(:kinds) ORDER BY c.relname"
        ),
        {"schema": schema, "kinds": list(_RELATION_KINDS)},
    ).all()
    granted: dict[str, frozenset[str]] = {}
    for table, kind in tables:
        # A view is read only: an updatable one writes its base table with the view owner's
        # rights, which would step around a restricted table (the audit trail) beneath it.
        granted[table] = runtime_privileges(table) & (frozenset({SELECT}) if kind in _VIEW_KINDS else DML)
        target = f"{q_schema}.{_quote(connection, table)}"
        # Everything off first, so a privilege given earlier (by hand, or by the default
        # privileges before this table was restricted) does not outlive the declaration.
        statements.append(f"REVOKE ALL ON TABLE {target} FROM {q_role}")
        statements.append(f"GRANT {_privilege_list(granted[table])} ON TABLE {target} TO {q_role}")
    statements += [
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q_schema} FROM {q_role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {q_schema} TO {q_role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {q_schema} GRANT {_privilege_list(DML)} ON TABLES TO {q_role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {q_schema} GRANT USAGE, SELECT ON SEQUENCES TO {q_role}",
    ]
    for statement in statements:
        connection.exec_driver_sql(statement)
    log.info(
        "runtime role granted",
        extra={"database": database, "runtime_role": runtime_role, "owner": me, "tables": len(granted)},
    )
    return granted


@dataclass(frozen=True)
class ServiceDatabase:
    """One service's database and the passwords of its two roles."""

    database: str
    owner_password: str
    runtime_password: str

    @property
    def owner(self) -> str:
        return f"{self.database}_owner"

    @property
    def runtime(self) -> str:
        return self.database


def password_variables(database: str) -> tuple[str, str]:
    """The environment variables holding the owner's and the runtime role's passwords."""
    stem = f"POSTGRES_{database.upper()}"
    return f"{stem}_OWNER_PASSWORD", f"{stem}_PASSWORD"


def services_from_environment(databases: Sequence[str], environ: Mapping[str, str]) -> list[ServiceDatabase]:
    found, missing = [], []
    for database in databases:
        owner_variable, runtime_variable = password_variables(database)
        missing += [name for name in (owner_variable, runtime_variable) if not environ.get(name)]
        found.append(ServiceDatabase(database, environ.get(owner_variable, ""), environ.get(runtime_variable, "")))
    if missing:
        raise RoleError(f"no password in {', '.join(missing)}")
    return found


def provision(admin_url: str, services: Sequence[ServiceDatabase], *, timeout: float = 60.0) -> None:
    """As a superuser: both roles of each service, its database, and its schema's ownership."""
    url = make_url(admin_url)
    if url.get_backend_name() != "postgresql":
        return
    # hide_parameters: an error's message must not carry a password verifier.
    engine = create_engine(url, isolation_level="AUTOCOMMIT", hide_parameters=True)
    try:
        with _connect(engine, timeout) as connection:
            admin = connection.execute(text("SELECT current_user")).scalar_one()
            for service in services:
                roles = ((service.owner, service.owner_password), (service.runtime, service.runtime_password))
                for role, password in roles:
                    if role == admin:
                        raise RoleError(f"{role!r} is the superuser this step connects as, not a service's role")
                    _ensure_role(connection, role, password)
                _ensure_database(connection, service)
    finally:
        engine.dispose()
    for service in services:
        database_engine = create_engine(
            url.set(database=service.database), isolation_level="AUTOCOMMIT", hide_parameters=True
        )
        try:
            with database_engine.connect() as connection:
                _hand_schema_to_owner(connection, service.owner)
        finally:
            database_engine.dispose()
        log.info(
            "postgres roles ready",
            extra={"database": service.database, "owner": service.owner, "runtime_role": service.runtime},
        )


def _connect(engine: Engine, timeout: float) -> Connection:
    """A first connection, waiting up to `timeout` seconds for the server to accept it (compose's
    healthcheck can pass while the image's first-start server listens on its socket only)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return engine.connect()
        except OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1)


def _ensure_role(connection: Connection, role: str, password: str) -> None:
    """CREATE or ALTER the role with only LOGIN. The password goes as a SCRAM verifier made here,
    so the plaintext reaches neither the server nor its statement log."""
    from psycopg2.extensions import encrypt_password

    if not password:
        raise RoleError(f"no password for {role!r}")
    exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": role}).first()
    # libpq makes SCRAM verifiers only with a connection at hand (it is not sent anything).
    verifier = encrypt_password(password, role, connection.connection.dbapi_connection, "scram-sha-256")
    verb = "ALTER" if exists else "CREATE"
    statement = f"{verb} ROLE {_quote(connection, role)} WITH {_ROLE_ATTRIBUTES} PASSWORD %s"
    connection.exec_driver_sql(statement, (verifier,))


def _ensure_database(connection: Connection, service: ServiceDatabase) -> None:
    q_database, q_owner = _quote(connection, service.database), _quote(connection, service.owner)
    exists = connection.execute(
        text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": service.database}
    ).first()
    if exists:
        connection.exec_driver_sql(f"ALTER DATABASE {q_database} OWNER TO {q_owner}")
    else:
        connection.exec_driver_sql(f"CREATE DATABASE {q_database} OWNER {q_owner}")
    connection.exec_driver_sql(f"REVOKE ALL ON DATABASE {q_database} FROM PUBLIC")
    connection.exec_driver_sql(f"GRANT CONNECT ON DATABASE {q_database} TO {_quote(connection, service.runtime)}")


def _hand_schema_to_owner(connection: Connection, owner: str) -> None:
    """The `public` schema and everything in it belong to the owner role, so its migrations can
    alter what an earlier superuser-run migration created. Sequences that belong to a table's
    column follow their table; the others are moved on their own afterwards."""
    q_owner = _quote(connection, owner)
    connection.exec_driver_sql(f"ALTER SCHEMA public OWNER TO {q_owner}")
    # Before PostgreSQL 15 every role could create objects in `public`.
    connection.exec_driver_sql("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    others = text(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = ANY(:kinds) AND pg_get_userbyid(c.relowner) <> :owner"
        " ORDER BY c.relname"
    )
    for name, kind in connection.execute(others, {"kinds": list(_RELATION_KINDS), "owner": owner}).all():
        keyword = _RELATION_KINDS[kind]
        connection.exec_driver_sql(f"ALTER {keyword} public.{_quote(connection, name)} OWNER TO {q_owner}")
    for (name,) in connection.execute(others, {"kinds": ["S"], "owner": owner}).all():
        connection.exec_driver_sql(f"ALTER SEQUENCE public.{_quote(connection, name)} OWNER TO {q_owner}")
