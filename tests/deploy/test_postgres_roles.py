"""PostgreSQL roles per service on the machine's real server, as compose sets them up: the real
`python -m cartero_common postgres-setup` as the superuser, then every service's real `migrate`
as its owner role (which grants its runtime role), then what each role can and cannot do.
Databases and roles carry a name of their own per run and are dropped afterwards."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from psycopg2 import errors
from psycopg2.extensions import parse_dsn
from sqlalchemy import URL, inspect, text

from cartero_common.consume import Ledger, migrate_ledger
from cartero_common.db import make_engine, make_sessionmaker, migrate
from cartero_common.pg_roles import (
    RUNTIME_PRIVILEGES,
    RoleError,
    ServiceDatabase,
    grant_runtime,
    password_variables,
    runtime_privileges,
    services_from_environment,
)
from consumer_logs.repository import EventFilter, add_events, event_row, find_events
from tests.support import PG_ADMIN_DSN, ROOT, python_env, served, unavailable
from tests.token_validator.support import ADMIN_KEY, SERVICE_KEY, settings_for
from token_validator.app import create_app
from token_validator.db import open_database
from token_validator.quota import PREPARED_STATEMENTS

SERVICES = ("token_validator", "consumer_logs", "consumer_sms", "consumer_email")
SERVER = parse_dsn(PG_ADMIN_DSN)
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Cartero-Admin": "ana.admin"}
SERVICE = {"Authorization": f"Bearer {SERVICE_KEY}"}


def sqlalchemy_url(user: str, password: str | None, database: str) -> str:
    return URL.create(
        "postgresql+psycopg2",
        username=user,
        password=password,
        host=SERVER.get("host", "127.0.0.1"),
        port=int(SERVER.get("port", 5432)),
        database=database,
    ).render_as_string(hide_password=False)


def connect(user: str, password: str | None, database: str) -> Any:
    return psycopg2.connect(
        host=SERVER.get("host", "127.0.0.1"),
        port=SERVER.get("port", 5432),
        user=user,
        password=password,
        dbname=database,
    )


@dataclass
class Deployment:
    services: dict[str, ServiceDatabase]  # by service name
    admin_url: str
    setup_output: str

    def owner(self, service: str, database: str | None = None) -> Any:
        s = self.services[service]
        return connect(s.owner, s.owner_password, database or s.database)

    def runtime(self, service: str, database: str | None = None) -> Any:
        s = self.services[service]
        return connect(s.runtime, s.runtime_password, database or s.database)

    def owner_url(self, service: str) -> str:
        s = self.services[service]
        return sqlalchemy_url(s.owner, s.owner_password, s.database)

    def runtime_url(self, service: str) -> str:
        s = self.services[service]
        return sqlalchemy_url(s.runtime, s.runtime_password, s.database)

    def superuser(self, service: str) -> Any:
        return psycopg2.connect(PG_ADMIN_DSN, dbname=self.services[service].database)


def migrate_env(url: str, runtime_role: str) -> dict[str, str]:
    """What compose gives a `*-migrate` job: the owner's URL and the runtime role."""
    return python_env(
        DATABASE_URL=url,
        CONSUMER_SMS_DATABASE_URL=url,
        CONSUMER_EMAIL_DATABASE_URL=url,
        DATABASE_RUNTIME_ROLE=runtime_role,
    )


def run_as_owner(deployment: Deployment, service: str, *command: str) -> None:
    """`python -m <command>` as that service's `*-migrate` job runs it: the owner's URL, the
    runtime role to grant."""
    s = deployment.services[service]
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env=migrate_env(deployment.owner_url(service), s.runtime),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-1500:]


def drop_everything(admin: Any, services: dict[str, ServiceDatabase]) -> None:
    with admin.cursor() as cur:
        for s in services.values():
            cur.execute(f'DROP DATABASE IF EXISTS "{s.database}" WITH (FORCE)')
        for s in services.values():
            cur.execute(f'DROP ROLE IF EXISTS "{s.runtime}", "{s.owner}"')


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    try:
        admin = psycopg2.connect(PG_ADMIN_DSN)
    except psycopg2.OperationalError as exc:
        unavailable(f"PostgreSQL ({exc})")
    admin.autocommit = True
    prefix = f"cartero_roles_{uuid.uuid4().hex[:8]}"
    services = {
        name: ServiceDatabase(f"{prefix}_{name}", secrets.token_hex(16), secrets.token_hex(16)) for name in SERVICES
    }
    admin_url = sqlalchemy_url(SERVER.get("user", "postgres"), SERVER.get("password"), SERVER.get("dbname", "postgres"))
    passwords: dict[str, str] = {}
    for s in services.values():
        owner_variable, runtime_variable = password_variables(s.database)
        passwords |= {owner_variable: s.owner_password, runtime_variable: s.runtime_password}
    try:
        setup = subprocess.run(
            [sys.executable, "-m", "cartero_common", "postgres-setup"],
            cwd=ROOT,
            env=python_env(
                POSTGRES_ADMIN_URL=admin_url,
                POSTGRES_DATABASES=" ".join(s.database for s in services.values()),
                **passwords,
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert setup.returncode == 0, setup.stderr[-2000:]
        # Every service's real migrate command, as its `*-migrate` job runs it, all at once.
        jobs = {
            name: subprocess.Popen(
                [sys.executable, "-m", name, "migrate"],
                cwd=ROOT,
                env=migrate_env(sqlalchemy_url(s.owner, s.owner_password, s.database), s.runtime),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name, s in services.items()
        }
        outputs = {name: job.communicate(timeout=120)[0] for name, job in jobs.items()}
        failed = {name: outputs[name][-1500:] for name, job in jobs.items() if job.returncode != 0}
        assert not failed, failed
        yield Deployment(services, admin_url, setup.stdout + setup.stderr)
    finally:
        drop_everything(admin, services)
        admin.close()


def refused(connection: Any, statement: str, params: tuple[Any, ...] = ()) -> str:
    """Run `statement`, which must be refused for lack of a privilege; PostgreSQL's message."""
    with pytest.raises(errors.InsufficientPrivilege) as refusal:
        with connection.cursor() as cur:
            cur.execute(statement, params)
    connection.rollback()
    return str(refusal.value)


# --- the owner -------------------------------------------------------------------------------


def test_each_owner_migrated_its_database_without_being_a_superuser(deployment: Deployment) -> None:
    for name, s in deployment.services.items():
        with deployment.superuser(name) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT r.rolsuper, r.rolcreatedb, r.rolcreaterole, pg_get_userbyid(d.datdba)"
                " FROM pg_roles r, pg_database d WHERE r.rolname = %s AND d.datname = current_database()",
                (s.owner,),
            )
            assert cur.fetchone() == (False, False, False, s.owner)
            cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> %s", (s.owner,))
            assert cur.fetchone() == (0,), f"{name}: tables not owned by {s.owner}"
            cur.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'alembic_version%%'"
            )
            assert cur.fetchone() == (1,), name
        conn.close()
    from alembic.script import ScriptDirectory

    from token_validator.__main__ import ALEMBIC, VERSION_TABLE

    validator = deployment.owner("token_validator")
    with validator.cursor() as cur:
        cur.execute(f"SELECT version_num FROM {VERSION_TABLE}")
        assert cur.fetchall() == [(ScriptDirectory(str(ALEMBIC)).get_current_head(),)]
    validator.close()


def test_the_setup_step_prints_no_password(deployment: Deployment) -> None:
    assert "postgres roles ready" in deployment.setup_output
    for s in deployment.services.values():
        assert s.owner_password not in deployment.setup_output
        assert s.runtime_password not in deployment.setup_output


def test_an_owner_cannot_connect_to_another_services_database(deployment: Deployment) -> None:
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        deployment.owner("consumer_sms", deployment.services["token_validator"].database)


def test_setting_up_and_migrating_again_changes_nothing(deployment: Deployment) -> None:
    """Compose runs both on every `up`."""
    from cartero_common.pg_roles import provision

    provision(deployment.admin_url, list(deployment.services.values()))
    for name in ("token_validator", "consumer_sms"):
        run_as_owner(deployment, name, name, "migrate")
    assert_audit_trail_insert_only(deployment)


# --- a consumer's runtime role and the tokens ------------------------------------------------


def test_a_consumers_role_cannot_even_connect_to_the_validators_database(deployment: Deployment) -> None:
    validator_db = deployment.services["token_validator"].database
    for consumer in ("consumer_sms", "consumer_email", "consumer_logs"):
        with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
            deployment.runtime(consumer, validator_db)


def test_a_consumers_role_given_connect_still_cannot_read_or_write_tokens(deployment: Deployment) -> None:
    validator = deployment.services["token_validator"]
    sms = deployment.services["consumer_sms"]
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'GRANT CONNECT ON DATABASE "{validator.database}" TO "{sms.runtime}"')
    try:
        conn = deployment.runtime("consumer_sms", validator.database)
        assert "permission denied for table tokens" in refused(conn, "SELECT digest FROM tokens")
        refused(conn, "UPDATE tokens SET used = 0")
        refused(conn, "DELETE FROM tokens")
        refused(conn, "INSERT INTO tokens (id) VALUES (-1)")
        refused(conn, "DELETE FROM audit_events")
        refused(conn, "CREATE TABLE planted (id int)")
        conn.close()
    finally:
        with admin.cursor() as cur:
            cur.execute(f'REVOKE CONNECT ON DATABASE "{validator.database}" FROM "{sms.runtime}"')
        admin.close()


# --- the validator's runtime role ------------------------------------------------------------


def _audit_row(cur: Any, action: str) -> int:
    cur.execute(
        "INSERT INTO audit_events (at, actor, action, target_type, target_id, details)"
        " VALUES (now(), 'roles-test', %s, 'token', '1', '{}') RETURNING id",
        (action,),
    )
    row_id: int = cur.fetchone()[0]
    return row_id


def test_the_audit_trail_is_insert_only_for_the_validators_runtime_role(deployment: Deployment) -> None:
    assert_audit_trail_insert_only(deployment)


def assert_audit_trail_insert_only(deployment: Deployment) -> None:
    conn = deployment.runtime("token_validator")
    with conn.cursor() as cur:
        row_id = _audit_row(cur, "roles.inserted")
        cur.execute("SELECT action FROM audit_events WHERE id = %s", (row_id,))
        assert cur.fetchone() == ("roles.inserted",)
    conn.commit()
    assert "permission denied for table audit_events" in refused(
        conn, "UPDATE audit_events SET actor = 'someone-else' WHERE id = %s", (row_id,)
    )
    refused(conn, "DELETE FROM audit_events WHERE id = %s", (row_id,))
    refused(conn, "TRUNCATE audit_events")
    conn.close()
    with deployment.superuser("token_validator") as check, check.cursor() as cur:
        cur.execute("SELECT actor, action FROM audit_events WHERE id = %s", (row_id,))
        assert cur.fetchone() == ("roles-test", "roles.inserted")
    check.close()


def test_the_validators_runtime_role_reads_and_writes_token_rows(deployment: Deployment) -> None:
    conn = deployment.runtime("token_validator")
    with conn.cursor() as cur:
        # A real row through every statement, rolled back: the privileges, not the data, are tested.
        cur.execute(
            "INSERT INTO applications (name, disabled, created_at) VALUES ('roles-app', false, now()) RETURNING id"
        )
        app_id = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO tokens (kind, application_id, prefix, digest, actions, created_at)"
            " VALUES ('application', %s, 'roles', %s, '*', now()) RETURNING id",
            (app_id, secrets.token_hex(32)),
        )
        token_id = cur.fetchone()[0]
        cur.execute("UPDATE tokens SET used = used + 1 WHERE id = %s", (token_id,))
        assert cur.rowcount == 1
        cur.execute("SELECT used FROM tokens WHERE id = %s", (token_id,))
        assert cur.fetchone() == (1,)
        cur.execute("DELETE FROM tokens WHERE id = %s", (token_id,))
        assert cur.rowcount == 1
    conn.rollback()
    conn.close()


def test_the_validator_serves_on_its_runtime_role(deployment: Deployment) -> None:
    """The admin API's writes, the hot path's spend (prepared statements), a refusal, a cascade
    delete and the audit listing, with nothing but row access."""
    url = deployment.runtime_url("token_validator")
    db = open_database(url, prepared=PREPARED_STATEMENTS)
    try:
        app = create_app(settings_for(url, reconcile_after_seconds=0), db=db)
        with served(app) as base, httpx.Client(base_url=base, timeout=10) as client:
            application = client.post("/v1/admin/applications", json={"name": "roles-served"}, headers=ADMIN)
            assert application.status_code == 201, application.text
            owner_id = application.json()["id"]
            created = client.post(
                "/v1/admin/tokens",
                json={
                    "kind": "application",
                    "owner_id": owner_id,
                    "actions": ["sms.send"],
                    "restriction": {"type": "max_uses", "limit": 1},
                },
                headers=ADMIN,
            )
            assert created.status_code == 201, created.text
            token = created.json()["token"]
            answers = [
                client.post("/v1/validate", json={"token": token, "action": "sms.send"}, headers=SERVICE)
                for _ in range(2)
            ]
            assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
            assert [a.json()["allowed"] for a in answers] == [True, False]
            refusals = client.get("/v1/admin/refusals", params={"token_id": created.json()["id"]}, headers=ADMIN)
            assert refusals.status_code == 200 and refusals.json()["total"] == 1, refusals.text
            audit = client.get("/v1/admin/audit", params={"actor": "ana.admin"}, headers=ADMIN)
            assert {"application.create", "token.create"} <= {e["action"] for e in audit.json()["items"]}
            deleted = client.delete(f"/v1/admin/applications/{owner_id}", params={"cascade": True}, headers=ADMIN)
            assert deleted.status_code == 204, deleted.text
    finally:
        db.dispose()


# --- every runtime role ----------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_a_runtime_role_cannot_change_the_schema(deployment: Deployment, service: str) -> None:
    conn = deployment.runtime(service)
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'alembic%%'")
        table = cur.fetchone()[0]
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'alembic%%'")
        version_table = cur.fetchone()[0]
    conn.rollback()
    assert "permission denied for schema public" in refused(conn, "CREATE TABLE planted (id int)")
    assert "must be owner" in refused(conn, f"DROP TABLE {table}")
    refused(conn, f"ALTER TABLE {table} ADD COLUMN planted int")
    refused(conn, f"TRUNCATE {table}")
    refused(conn, "CREATE TEMPORARY TABLE planted (id int)")
    refused(conn, f"UPDATE {version_table} SET version_num = 'planted'")
    conn.close()


def test_the_consumers_work_on_their_runtime_roles(deployment: Deployment) -> None:
    """What consumer_sms does when it starts (the ledger's migrations, current: nothing to do)
    and per batch; what consumer_logs does per batch and on `GET /v1/events`."""
    url = deployment.runtime_url("consumer_sms")
    migrate_ledger(url)
    engine = make_engine(url)
    try:
        ledger = Ledger(engine, "cola_sms")
        at = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
        ledger.record([("roles-1", at, "log")])
        assert ledger.lookup(["roles-1", "roles-2"]) == {"roles-1": (at, "log")}
    finally:
        engine.dispose()
    engine = make_engine(deployment.runtime_url("consumer_logs"))
    try:
        sessions = make_sessionmaker(engine)
        body = b'{"id": "roles-1", "evento": "consumido", "cola": "cola_sms"}'
        with sessions.begin() as session:
            add_events(session, [event_row(body, message_id="roles-1", now=datetime.now(UTC), store_content=False)])
        with sessions() as session:
            assert [e.evento for e in find_events(session, EventFilter(message_id="roles-1"))] == ["consumido"]
    finally:
        engine.dispose()


def test_a_table_a_later_migration_adds_is_granted_too(deployment: Deployment) -> None:
    """Default privileges: a new table's rows are the runtime role's at once, its sequence too,
    and the grants step still applies the declared exceptions to it."""
    owner = deployment.owner("token_validator")
    with owner.cursor() as cur:
        cur.execute("CREATE TABLE later_sessions (id bigserial PRIMARY KEY, note text)")
    owner.commit()
    try:
        conn = deployment.runtime("token_validator")
        with conn.cursor() as cur:
            cur.execute("INSERT INTO later_sessions (note) VALUES ('x') RETURNING id")
            cur.execute("UPDATE later_sessions SET note = 'y'")
            cur.execute("DELETE FROM later_sessions")
        conn.commit()
        refused(conn, "TRUNCATE later_sessions")
        conn.close()
    finally:
        with owner.cursor() as cur:
            cur.execute("DROP TABLE later_sessions")
        owner.commit()
        owner.close()


def test_a_view_is_read_only_for_the_runtime_role(deployment: Deployment) -> None:
    """An updatable view over the audit trail would write it with its owner's rights: the grants
    step leaves the runtime role SELECT on any view."""
    owner = deployment.owner("token_validator")
    with owner.cursor() as cur:
        cur.execute("CREATE VIEW audit_view AS SELECT * FROM audit_events")
    owner.commit()
    try:
        run_as_owner(deployment, "token_validator", "cartero_common", "db-grants")
        conn = deployment.runtime("token_validator")
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM audit_view")
            conn.commit()
            refused(conn, "DELETE FROM audit_view")
            refused(conn, "UPDATE audit_view SET actor = 'x'")
        finally:
            conn.rollback()  # a statement wrongly allowed must not hold its locks against the DROP
            conn.close()
    finally:
        with owner.cursor() as cur:
            cur.execute("DROP VIEW audit_view")
        owner.commit()
        owner.close()


def test_the_grants_step_takes_back_what_was_granted_by_hand(deployment: Deployment) -> None:
    """`python -m cartero_common db-grants`: a privilege given outside the declaration (here
    UPDATE and DELETE on the audit trail) does not survive the next migrate job."""
    s = deployment.services["token_validator"]
    owner = deployment.owner("token_validator")
    with owner.cursor() as cur:
        cur.execute(f'GRANT ALL ON audit_events TO "{s.runtime}"')
    owner.commit()
    owner.close()
    run_as_owner(deployment, "token_validator", "cartero_common", "db-grants")
    assert_audit_trail_insert_only(deployment)


def test_the_grants_step_refuses_roles_that_defeat_it(deployment: Deployment) -> None:
    s = deployment.services["token_validator"]
    engine = make_engine(deployment.owner_url("token_validator"))
    try:
        with engine.connect() as connection:
            with pytest.raises(RoleError, match="the role migrating"):
                grant_runtime(connection, s.owner)
            connection.rollback()
            with pytest.raises(RoleError, match="does not exist"):
                grant_runtime(connection, f"{s.runtime}_missing")
            connection.rollback()
            superuser = connection.execute(text("SELECT rolname FROM pg_roles WHERE rolsuper LIMIT 1")).scalar_one()
            with pytest.raises(RoleError, match="superuser"):
                grant_runtime(connection, superuser)
    finally:
        engine.dispose()


# --- a deployment from before the roles ------------------------------------------------------


def test_a_database_the_superuser_migrated_is_handed_to_the_owner(deployment: Deployment) -> None:
    """Stacks deployed before the roles: the superuser created the tables. The setup step hands
    them to the owner, whose next migration alters them, and grants follow."""
    from alembic import command
    from alembic.config import Config

    from cartero_common.pg_roles import provision
    from token_validator.__main__ import ALEMBIC, VERSION_TABLE

    legacy = ServiceDatabase(f"{deployment.services['token_validator'].database}_legacy", "o-pass", "r-pass")
    admin = psycopg2.connect(PG_ADMIN_DSN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{legacy.database}"')
    try:
        config = Config()
        config.set_main_option("script_location", str(ALEMBIC))
        config.set_main_option(
            "sqlalchemy.url", sqlalchemy_url(SERVER.get("user", "postgres"), SERVER.get("password"), legacy.database)
        )
        config.attributes["version_table"] = VERSION_TABLE
        config.attributes["configure_logger"] = False
        command.upgrade(config, "0002")  # as the superuser, one migration short of head
        provision(deployment.admin_url, [legacy])
        owner_url = sqlalchemy_url(legacy.owner, legacy.owner_password, legacy.database)
        migrate(script_location=ALEMBIC, url=owner_url, version_table=VERSION_TABLE, runtime_role=legacy.runtime)
        engine = make_engine(owner_url)
        try:
            assert "count" in {c["name"] for c in inspect(engine).get_columns("refusals")}
        finally:
            engine.dispose()
        conn = connect(legacy.runtime, legacy.runtime_password, legacy.database)
        refused(conn, "DELETE FROM audit_events")
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM tokens")
        conn.close()
    finally:
        drop_everything(admin, {"legacy": legacy})
        admin.close()


# --- without PostgreSQL ----------------------------------------------------------------------


def test_sqlite_has_no_roles_and_migrates_as_before(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/token_validator.db"
    from token_validator.__main__ import ALEMBIC, VERSION_TABLE

    migrate(script_location=ALEMBIC, url=url, version_table=VERSION_TABLE, runtime_role="token_validator")
    engine = make_engine(url)
    try:
        assert "audit_events" in inspect(engine).get_table_names()
        with engine.connect() as connection:
            assert grant_runtime(connection, "token_validator") == {}
    finally:
        engine.dispose()
    result = subprocess.run(
        [sys.executable, "-m", "cartero_common", "db-grants", "--role", "token_validator"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_the_declaration_restricts_the_audit_trail_and_version_tables_only() -> None:
    assert runtime_privileges("audit_events") == {"SELECT", "INSERT"}
    assert runtime_privileges("alembic_version_consumer_ledger") == {"SELECT"}
    assert runtime_privileges("tokens") == {"SELECT", "INSERT", "UPDATE", "DELETE"}
    assert set(RUNTIME_PRIVILEGES) == {"alembic_version*", "audit_events"}


def test_the_setup_step_names_every_missing_password() -> None:
    with pytest.raises(RoleError) as missing:
        services_from_environment(["token_validator", "consumer_sms"], {"POSTGRES_CONSUMER_SMS_PASSWORD": "x"})
    message = str(missing.value)
    for name in (
        "POSTGRES_TOKEN_VALIDATOR_OWNER_PASSWORD",
        "POSTGRES_TOKEN_VALIDATOR_PASSWORD",
        "POSTGRES_CONSUMER_SMS_OWNER_PASSWORD",
    ):
        assert name in message
    assert "POSTGRES_CONSUMER_SMS_PASSWORD," not in message and not message.endswith("POSTGRES_CONSUMER_SMS_PASSWORD")
