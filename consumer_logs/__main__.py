"""`python -m consumer_logs [serve|migrate|replay-dlq [--limit N]]`: consume `logs` and serve the
read API."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import uvicorn

from cartero_common.clock import system_clock
from cartero_common.consume import loop_from_settings, main
from cartero_common.credentials import MIN_KEY_LENGTH
from cartero_common.db import make_engine, make_sessionmaker, migrate
from cartero_common.webhook_wire import QUEUE_WEBHOOKS
from cartero_common.wire import QUEUE_LOGS
from consumer_logs.api import create_app
from consumer_logs.config import Settings
from consumer_logs.handler import make_handler

log = logging.getLogger("consumer_logs")
ALEMBIC = Path(__file__).parent / "alembic"


def run_migrations(settings: Settings) -> None:
    migrate(
        script_location=ALEMBIC,
        url=settings.database_url,
        version_table="alembic_version_consumer_logs",
        runtime_role=settings.database_runtime_role,
    )


def settings_problems(settings: Settings) -> list[str]:
    """Why the settings are unfit to serve with, if they are."""
    if len(settings.consumer_logs_read_key) < MIN_KEY_LENGTH:
        return [f"CONSUMER_LOGS_READ_KEY must be set to a secret of at least {MIN_KEY_LENGTH} characters"]
    return []


def serve(settings: Settings) -> None:
    problems = settings_problems(settings)
    if problems:
        for problem in problems:
            print(f"consumer_logs: {problem}", file=sys.stderr)
        raise SystemExit(2)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    loop = loop_from_settings(
        settings,
        service="consumer_logs",
        queue=QUEUE_LOGS,
        handler=make_handler(
            sessions,
            system_clock,
            store_content=settings.consumer_logs_store_content,
            notify=settings.consumer_logs_webhooks,
        ),
        prefetch=settings.consumer_logs_prefetch,
        batchable=True,
        report_to=None,  # it consumes `logs`: reporting there would feed itself
        declares=(QUEUE_WEBHOOKS,) if settings.consumer_logs_webhooks else (),
    )
    consumer = threading.Thread(target=loop.run, name="consume-logs", daemon=True)
    consumer.start()
    if not settings.consumer_logs_status_key:
        log.warning("CONSUMER_LOGS_STATUS_KEY is not set: GET /v1/status/{id} refuses every request")
    app = create_app(
        sessions,
        read_key=settings.consumer_logs_read_key,
        status_key=settings.consumer_logs_status_key,
        consuming=loop.connected.is_set,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.consumer_logs_host, port=settings.consumer_logs_port, log_config=None, access_log=False
        )
    )
    try:
        server.run()  # handles SIGTERM/SIGINT itself, then returns
    finally:
        loop.stop()
        consumer.join(timeout=settings.consumer_grace_seconds + 1)
        engine.dispose()


def cli() -> int:
    settings = Settings()
    return main(
        prog="consumer_logs",
        queue=QUEUE_LOGS,
        settings=settings,
        run=lambda: serve(settings),
        migrate=lambda: run_migrations(settings),
        run_command="serve",
    )


if __name__ == "__main__":
    sys.exit(cli())
