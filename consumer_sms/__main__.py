"""`python -m consumer_sms [run|migrate|replay-dlq [--limit N]]`: consume `cola_sms` until SIGTERM."""

from __future__ import annotations

import sys

from cartero_common.clock import system_clock
from cartero_common.consume import main, migrate_ledger, run_delivering
from cartero_common.wire import QUEUE_SMS
from consumer_sms.config import Settings
from consumer_sms.handler import make_handler
from consumer_sms.providers import HttpGateway, LogProvider, SmsProvider


def build_provider(settings: Settings) -> SmsProvider:
    if settings.sms_provider == "http":
        if not settings.sms_gateway_url:
            raise SystemExit("SMS_PROVIDER=http needs SMS_GATEWAY_URL")
        return HttpGateway(
            settings.sms_gateway_url, timeout=settings.sms_gateway_timeout, token=settings.sms_gateway_token
        )
    return LogProvider()


def run(settings: Settings) -> None:
    provider = build_provider(settings)
    run_delivering(
        settings,
        service="consumer_sms",
        queue=QUEUE_SMS,
        database_url=settings.database_url,
        prefetch=settings.consumer_sms_prefetch,
        metrics_port=settings.consumer_sms_metrics_port,
        batchable=provider.batchable,
        make_handler=lambda ledger: make_handler(
            provider, ledger=ledger, clock=system_clock, max_body=settings.consumer_max_body_bytes
        ),
    )


def cli() -> int:
    settings = Settings()
    return main(
        prog="consumer_sms",
        queue=QUEUE_SMS,
        settings=settings,
        run=lambda: run(settings),
        migrate=lambda: migrate_ledger(settings.database_url, settings.database_runtime_role),
    )


if __name__ == "__main__":
    sys.exit(cli())
