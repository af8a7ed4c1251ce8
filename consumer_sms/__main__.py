"""`python -m consumer_sms [run|migrate|replay-dlq [--limit N]]`: consume `cola_sms` until SIGTERM."""

from __future__ import annotations

import sys

from cartero_common.clock import Clock, system_clock
from cartero_common.consume import Failover, breaker_policy, main, migrate_ledger, run_delivering
from cartero_common.settings import load_settings
from cartero_common.wire import QUEUE_SMS
from consumer_sms.config import Settings
from consumer_sms.handler import make_handler
from consumer_sms.providers import FailoverGateways, HttpGateway, LogProvider, SmsProvider

SERVICE = "consumer_sms"


def build_provider(settings: Settings, *, clock: Clock = system_clock) -> SmsProvider:
    if settings.sms_provider == "http":
        if not settings.gateway_urls:
            raise SystemExit("SMS_PROVIDER=http needs SMS_GATEWAY_URLS (or SMS_GATEWAY_URL)")
        gateways = [
            HttpGateway(url, timeout=settings.sms_gateway_timeout, token=settings.sms_gateway_token)
            for url in settings.gateway_urls
        ]
        failover = Failover(
            [(gateway.name, gateway) for gateway in gateways],
            service=SERVICE,
            policy=breaker_policy(settings),
            clock=clock,
        )
        return FailoverGateways(failover)
    return LogProvider()


def run(settings: Settings) -> None:
    provider = build_provider(settings)
    run_delivering(
        settings,
        service=SERVICE,
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
    settings = load_settings(Settings, SERVICE)
    return main(
        prog=SERVICE,
        queue=QUEUE_SMS,
        settings=settings,
        run=lambda: run(settings),
        migrate=lambda: migrate_ledger(settings.database_url, settings.database_runtime_role),
    )


if __name__ == "__main__":
    sys.exit(cli())
