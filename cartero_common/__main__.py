"""`python -m cartero_common wait-broker | wait-ready | rabbitmq-setup | postgres-setup | db-grants |
redact-url`: operator helpers shared by the run scripts and the compose stack."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cartero_common.amqp.blocking import wait_for_broker
from cartero_common.logging import configure_logging
from cartero_common.redact import redact_url
from cartero_common.settings import ServiceSettings


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m cartero_common")
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait-broker", help="exit 0 once AMQP_URL accepts a connection")
    wait.add_argument("--timeout", type=float, default=5.0)
    ready = sub.add_parser(
        "wait-ready",
        help="exit 0 once every name=URL answers 200; else name each one that did not, with its log's tail",
    )
    ready.add_argument("services", nargs="+", metavar="name=url")
    ready.add_argument("--timeout", type=float, default=60.0)
    ready.add_argument("--log-dir", type=Path, help="where <name>.log is, for the report")
    ready.add_argument("--pid", type=int, help="stop waiting if this process (the supervisor) exits")
    setup = sub.add_parser(
        "rabbitmq-setup",
        help="apply rabbitmq/definitions.json (vhost, queues, policies) and the users from the environment",
    )
    setup.add_argument("--definitions", type=Path, help="default: RABBITMQ_DEFINITIONS or rabbitmq/definitions.json")
    setup.add_argument("--vhost", help="default: RABBITMQ_VHOST or cartero")
    postgres = sub.add_parser(
        "postgres-setup",
        help="as the superuser (POSTGRES_ADMIN_URL): each service's database, its owner and runtime roles",
    )
    postgres.add_argument("databases", nargs="*", help="default: POSTGRES_DATABASES")
    postgres.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    grants = sub.add_parser(
        "db-grants",
        help="as the owner (DATABASE_URL), after migrating: row access for the runtime role, nothing more",
    )
    grants.add_argument("--role", help="default: DATABASE_RUNTIME_ROLE")
    # The URL comes on stdin, not as an argument: a command line is readable by every local user.
    sub.add_parser("redact-url", help="print the URL read from stdin with its password masked")
    args = parser.parse_args()
    if args.command == "wait-broker":
        return 0 if wait_for_broker(ServiceSettings().amqp_url, timeout=args.timeout) else 1
    if args.command == "wait-ready":
        return wait_ready(args.services, args.timeout, args.log_dir, args.pid)
    if args.command == "rabbitmq-setup":
        return rabbitmq_setup(args.definitions, args.vhost)
    if args.command == "postgres-setup":
        return postgres_setup(args.databases, args.timeout)
    if args.command == "db-grants":
        return db_grants(args.role)
    if args.command == "redact-url":
        print(redact_url(sys.stdin.read().strip()))
        return 0
    return 2


def wait_ready(specs: list[str], timeout: float, log_dir: Path | None, pid: int | None) -> int:
    from cartero_common import readiness

    try:
        services = [readiness.parse(spec, log_dir) for spec in specs]
    except ValueError as exc:
        print(f"wait-ready: {exc}", file=sys.stderr)
        return 2

    def alive() -> bool:
        return pid is None or Path(f"/proc/{pid}").exists()

    try:
        missing = readiness.wait_ready(services, timeout=timeout, alive=alive)
    except KeyboardInterrupt:
        return 130
    for not_ready in missing:
        print(not_ready.describe(), file=sys.stderr)
    if missing and not alive():
        print("the supervisor exited before every service was ready", file=sys.stderr)
    return 1 if missing else 0


def rabbitmq_setup(definitions: Path | None, vhost: str | None) -> int:
    from cartero_common.amqp.setup import SetupError, SetupSettings, run

    settings = SetupSettings()
    configure_logging("rabbitmq-setup", ServiceSettings().log_level)
    if definitions is not None:
        settings.rabbitmq_definitions = definitions
    if vhost is not None:
        settings.rabbitmq_vhost = vhost
    log = logging.getLogger("cartero_common.rabbitmq_setup")
    try:
        report = run(settings)
    except (SetupError, OSError, ValueError) as exc:
        log.error("rabbitmq setup failed: %s", exc)
        return 1
    log.info(
        "rabbitmq topology applied",
        extra={
            "vhost": settings.rabbitmq_vhost,
            "broker_version": report.broker_version,
            "queue_type": report.queue_type,
            "queues": report.queues,
            "policies": report.policies,
            "users": report.users,
            "roles_without_password": report.skipped_roles,
            "users_outside_the_roles": report.other_users,
        },
    )
    return 0


def postgres_setup(databases: list[str], timeout: float) -> int:
    """Reads POSTGRES_ADMIN_URL, POSTGRES_DATABASES (space- or comma-separated) and, for each
    database, POSTGRES_<DATABASE>_OWNER_PASSWORD and POSTGRES_<DATABASE>_PASSWORD."""
    from sqlalchemy.exc import SQLAlchemyError

    from cartero_common.pg_roles import RoleError, provision, services_from_environment

    configure_logging("postgres-setup", ServiceSettings().log_level)
    log = logging.getLogger("cartero_common.postgres_setup")
    names = databases or os.environ.get("POSTGRES_DATABASES", "").replace(",", " ").split()
    admin_url = os.environ.get("POSTGRES_ADMIN_URL", "")
    if not names or not admin_url:
        log.error("postgres setup needs POSTGRES_ADMIN_URL and POSTGRES_DATABASES (or databases as arguments)")
        return 2
    try:
        provision(admin_url, services_from_environment(names, os.environ), timeout=timeout)
    except (RoleError, SQLAlchemyError) as exc:
        # The engines hide parameters: the message names the statement, never a password.
        log.error("postgres setup failed: %s", exc)
        return 1
    return 0


def db_grants(role: str | None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cartero_common.db import make_engine
    from cartero_common.pg_roles import RoleError, grant_runtime

    configure_logging("db-grants", ServiceSettings().log_level)
    log = logging.getLogger("cartero_common.db_grants")
    runtime_role = role or os.environ.get("DATABASE_RUNTIME_ROLE", "")
    url = os.environ.get("DATABASE_URL", "")
    if not runtime_role or not url:
        log.error("db-grants needs DATABASE_URL (the owner's) and --role or DATABASE_RUNTIME_ROLE")
        return 2
    engine = make_engine(url)
    try:
        if engine.dialect.name != "postgresql":
            log.info("no roles on %s: nothing to grant", engine.dialect.name)
            return 0
        with engine.begin() as connection:
            grant_runtime(connection, runtime_role)
    except (RoleError, SQLAlchemyError) as exc:
        log.error("db-grants failed: %s", exc)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
