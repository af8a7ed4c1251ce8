"""`python -m consumer_email [run|migrate|replay-dlq [--limit N]]`: consume `correos` until SIGTERM."""

from __future__ import annotations

import sys
from pathlib import Path

from cartero_common.clock import Clock, system_clock
from cartero_common.consume import Failover, breaker_policy, main, migrate_ledger, run_delivering
from cartero_common.settings import load_settings
from cartero_common.wire import QUEUE_EMAIL
from consumer_email.config import Settings
from consumer_email.handler import make_handler
from consumer_email.providers import EmailProvider, FailoverSmtp, FileProvider, SmtpProvider

SERVICE = "consumer_email"


def build_provider(settings: Settings, *, clock: Clock = system_clock) -> EmailProvider:
    if settings.email_provider == "file":
        return FileProvider(Path(settings.mail_dir))
    servers = [
        SmtpProvider(
            host,
            port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout,
        )
        for host, port in settings.smtp_servers
    ]
    failover = Failover(
        [(server.name, server) for server in servers], service=SERVICE, policy=breaker_policy(settings), clock=clock
    )
    return FailoverSmtp(failover)


def run(settings: Settings) -> None:
    provider = build_provider(settings)
    run_delivering(
        settings,
        service=SERVICE,
        queue=QUEUE_EMAIL,
        database_url=settings.database_url,
        prefetch=settings.consumer_email_prefetch,
        metrics_port=settings.consumer_email_metrics_port,
        batchable=provider.batchable,
        make_handler=lambda ledger: make_handler(
            provider,
            sender=settings.smtp_from,
            ledger=ledger,
            clock=system_clock,
            max_body=settings.consumer_max_body_bytes,
        ),
    )


def cli() -> int:
    settings = load_settings(Settings, SERVICE)
    return main(
        prog=SERVICE,
        queue=QUEUE_EMAIL,
        settings=settings,
        run=lambda: run(settings),
        migrate=lambda: migrate_ledger(settings.database_url, settings.database_runtime_role),
    )


if __name__ == "__main__":
    sys.exit(cli())
