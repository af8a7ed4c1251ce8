"""`python -m token_validator [serve|migrate|create-token|create-admin|first-run]`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import uvicorn

from cartero_common.clock import system_clock
from cartero_common.db import migrate
from cartero_common.logging import configure_logging
from token_validator import commands
from token_validator.config import Settings

log = logging.getLogger("token_validator")
ALEMBIC = Path(__file__).parent / "alembic"
VERSION_TABLE = "alembic_version_token_validator"
MIN_KEY_LENGTH = 16


def run_migrations(settings: Settings) -> None:
    migrate(
        script_location=ALEMBIC,
        url=settings.database_url,
        version_table=VERSION_TABLE,
        runtime_role=settings.database_runtime_role,
    )


def key_problems(settings: Settings) -> list[str]:
    """Why the credentials are unfit to serve with, if they are."""
    problems = []
    for name in ("validator_service_key", "validator_admin_key"):
        if len(getattr(settings, name)) < MIN_KEY_LENGTH:
            problems.append(f"{name.upper()} must be set to a secret of at least {MIN_KEY_LENGTH} characters")
    if settings.validator_service_key and settings.validator_service_key == settings.validator_admin_key:
        problems.append("VALIDATOR_SERVICE_KEY and VALIDATOR_ADMIN_KEY must differ")
    webhooks_key = settings.validator_webhooks_key
    # Optional: without it no one can read the webhook endpoints, and nothing else changes.
    if webhooks_key and len(webhooks_key) < MIN_KEY_LENGTH:
        problems.append(f"VALIDATOR_WEBHOOKS_KEY, when set, must have at least {MIN_KEY_LENGTH} characters")
    if webhooks_key and webhooks_key in (settings.validator_service_key, settings.validator_admin_key):
        problems.append("VALIDATOR_WEBHOOKS_KEY must differ from VALIDATOR_SERVICE_KEY and VALIDATOR_ADMIN_KEY")
    return problems


def serve(settings: Settings) -> int:
    problems = key_problems(settings)
    if problems:
        for problem in problems:
            print(f"token_validator: {problem}", file=sys.stderr)
        return 2
    uvicorn.run(
        "token_validator.app:create_app",
        factory=True,
        host=settings.token_validator_host,
        port=settings.token_validator_port,
        workers=settings.token_validator_workers,
        log_config=None,
        access_log=False,
    )
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m token_validator")
    sub = root.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the HTTP API (the default)")
    sub.add_parser("migrate", help="bring the database schema up to date")
    token = sub.add_parser("create-token", help="create a token; prints it alone on the last line")
    token.add_argument("--kind", required=True, choices=["application", "group", "user"])
    token.add_argument("--owner", required=True, help="the owner's name (created if missing)")
    token.add_argument("--group", help="for a user token: a group the user joins (created if missing)")
    token.add_argument("--actions", required=True, help="comma-separated, e.g. sms.send,email.send, or '*'")
    limit = token.add_mutually_exclusive_group()
    limit.add_argument("--max-uses", type=int, metavar="N")
    limit.add_argument("--monthly", type=int, metavar="N")
    token.add_argument("--expires", metavar="ISO-8601", help="expiry; without an offset it is read in TIMEZONE")
    token.add_argument("--name", help="a label shown in lists")
    token.add_argument("--rate", metavar="N/second|N/minute", help="a rate limit beside the restriction")
    rated = sub.add_parser("set-rate", help="set or clear the rate limit of a token or a group")
    which = rated.add_mutually_exclusive_group(required=True)
    which.add_argument("--token-id", type=int, metavar="ID")
    which.add_argument("--group", metavar="NAME")
    how = rated.add_mutually_exclusive_group(required=True)
    how.add_argument("--rate", metavar="N/second|N/minute")
    how.add_argument("--clear", action="store_true", help="take the rate limit away")
    admin = sub.add_parser("create-admin", help="create an admin account; the password is read from stdin")
    admin.add_argument("--username", required=True)
    first = sub.add_parser("first-run", help="on the first start only: an admin and a demo token, written to a file")
    first.add_argument("--output", required=True, type=Path)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    configure_logging("token_validator", settings.log_level)
    command = args.command or "serve"
    if command == "serve":
        return serve(settings)
    if command == "migrate":
        run_migrations(settings)
        log.info("database migrated")
        return 0
    try:
        if command == "create-token":
            return commands.create_token(settings, args, system_clock)
        if command == "set-rate":
            return commands.set_rate(settings, args, system_clock)
        if command == "create-admin":
            return commands.create_admin(settings, args.username, sys.stdin.readline(), system_clock)
        return commands.first_run(settings, args.output, system_clock)
    except commands.CommandError as exc:
        print(f"token_validator {command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
