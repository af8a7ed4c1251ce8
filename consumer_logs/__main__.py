"""`python -m consumer_logs [serve|migrate]`: consume `logs` and serve the read API."""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

import uvicorn

from cartero_common.amqp import declare_shared_queues
from cartero_common.clock import system_clock
from cartero_common.consumer import ConsumerLoop
from cartero_common.db import make_engine, make_sessionmaker, migrate
from cartero_common.logging import configure_logging
from cartero_common.schemas import QUEUE_LOGS
from consumer_logs.api import create_app
from consumer_logs.config import Settings
from consumer_logs.handler import make_handler

log = logging.getLogger("consumer_logs")
ALEMBIC = Path(__file__).parent / "alembic"


def run_migrations(settings: Settings) -> None:
    migrate(script_location=ALEMBIC, url=settings.database_url, version_table="alembic_version_consumer_logs")


def serve(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    loop = ConsumerLoop(
        url=settings.amqp_url,
        queue=QUEUE_LOGS,
        handler=make_handler(sessions, system_clock),
        declare=lambda channel: declare_shared_queues(channel, (QUEUE_LOGS,)),
        prefetch=settings.consumer_logs_prefetch,
    )
    consumer = threading.Thread(target=loop.run, name="consume-logs", daemon=True)
    consumer.start()
    app = create_app(sessions, consuming=loop.connected.is_set)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.consumer_logs_host, port=settings.consumer_logs_port, log_config=None, access_log=False
        )
    )
    try:
        server.run()  # handles SIGTERM/SIGINT itself, then returns
    finally:
        loop.stop()
        consumer.join(timeout=30)
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m consumer_logs")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = Settings()
    configure_logging("consumer_logs", settings.log_level)
    if args.command == "migrate":
        run_migrations(settings)
        log.info("database migrated")
        return
    serve(settings)


if __name__ == "__main__":
    main()
