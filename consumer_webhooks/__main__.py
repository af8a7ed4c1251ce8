"""`python -m consumer_webhooks [run|replay-dlq [--limit N] [--queue webhook_deliveries|webhooks]]`:
hand the owners' notifications (`webhooks`) out to their endpoints and deliver them
(`webhook_deliveries`)."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from functools import partial

import httpx

from cartero_common.amqp.topology import RetryPolicy, parse_delays
from cartero_common.callback_urls import CallbackHostUnresolved, callback_addresses
from cartero_common.clock import system_clock
from cartero_common.consume import ConsumerLoop, loop_from_settings, main
from cartero_common.credentials import MIN_KEY_LENGTH
from cartero_common.metrics import serve_metrics
from cartero_common.settings import load_settings
from cartero_common.webhook_wire import QUEUE_WEBHOOK_DELIVERIES, QUEUE_WEBHOOKS
from consumer_webhooks.config import Settings
from consumer_webhooks.endpoints import HttpEndpointDirectory
from consumer_webhooks.handlers import deliver, fan_out

log = logging.getLogger("consumer_webhooks")


def delivery_policy(settings: Settings) -> RetryPolicy:
    """Each delay once, in order: one attempt more than there are delays."""
    delays = parse_delays(settings.webhook_retry_delays)
    return RetryPolicy(max_attempts=len(delays) + 1, delays=delays)


def settings_problems(settings: Settings) -> list[str]:
    if len(settings.validator_webhooks_key) < MIN_KEY_LENGTH:
        return [f"VALIDATOR_WEBHOOKS_KEY must be set to a secret of at least {MIN_KEY_LENGTH} characters"]
    return []


def loops(settings: Settings, directory: HttpEndpointDirectory, client: httpx.Client) -> list[ConsumerLoop]:
    policy = delivery_policy(settings)
    fan = loop_from_settings(
        settings,
        service="consumer_webhooks",
        queue=QUEUE_WEBHOOKS,
        handler=fan_out(directory, system_clock),
        prefetch=50,
        batchable=False,
        report_to=None,  # webhooks are not messages of the log
        declares=(QUEUE_WEBHOOK_DELIVERIES,),
        # While the validator is away the notifications wait in `webhooks.retry.<delay>`: as long
        # as the deliveries would wait for a receiver, not the consumers' few minutes.
        policy=policy,
    )
    handler = deliver(
        directory,
        client=client,
        check_url=partial(callback_addresses, allow_private=settings.webhooks_allow_private_urls),
        transient_url_errors=(CallbackHostUnresolved,),
        max_attempts=policy.max_attempts,
        timeout=settings.webhook_timeout_seconds,
    )
    # One loop per delivery in flight, each with a prefetch of one: a slow receiver holds its
    # own loop for at most the POST's whole budget while the others go on.
    workers = [
        loop_from_settings(
            settings,
            service=f"consumer_webhooks-{n}",
            queue=QUEUE_WEBHOOK_DELIVERIES,
            handler=handler,
            prefetch=1,
            batchable=False,
            report_to=None,
            policy=policy,
        )
        for n in range(settings.webhook_concurrency)
    ]
    return [fan, *workers]


def run(settings: Settings) -> None:
    problems = settings_problems(settings)
    if problems:
        for problem in problems:
            print(f"consumer_webhooks: {problem}", file=sys.stderr)
        raise SystemExit(2)
    directory = HttpEndpointDirectory(
        settings.validator_url, settings.validator_webhooks_key, cache_seconds=settings.webhook_endpoints_cache_seconds
    )
    # No redirects: a receiver's 3xx to another host would dodge the URL check.
    client = httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False)
    running = loops(settings, directory, client)

    def stop(*_: object) -> None:
        for loop in running:
            loop.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # Metrics (the readiness check) only once SIGTERM is handled: as a container's PID 1 a
    # SIGTERM that comes before the handler is ignored, and the stop would wait for SIGKILL.
    serve_metrics(settings.consumer_webhooks_metrics_port, host=settings.metrics_host)
    threads = [threading.Thread(target=loop.run, name=loop.name, daemon=True) for loop in running]
    for thread in threads:
        thread.start()
    log.info("consumer_webhooks started", extra={"workers": settings.webhook_concurrency})
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
    finally:
        client.close()
        directory.close()


def cli() -> int:
    settings = load_settings(Settings, "consumer_webhooks")
    return main(
        prog="consumer_webhooks",
        queue=QUEUE_WEBHOOK_DELIVERIES,
        settings=settings,
        run=lambda: run(settings),
        also_replays=(QUEUE_WEBHOOKS,),
    )


if __name__ == "__main__":
    sys.exit(cli())
