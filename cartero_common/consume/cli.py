"""What `python -m consumer_sms` / `consumer_email` / `consumer_logs` share: the commands
(`run`, the default; `migrate`; `replay-dlq [--limit N]`) and running a loop as a process
(signals, metrics endpoint, grace-period watchdog)."""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from cartero_common.amqp.topology import RetryPolicy, parse_delays
from cartero_common.consume.dlq import replay_dead_letters
from cartero_common.consume.failover import BreakerPolicy
from cartero_common.consume.ledger import Ledger, migrate_ledger
from cartero_common.consume.loop import ConsumerLoop
from cartero_common.consume.outcomes import BatchHandler
from cartero_common.db import make_engine
from cartero_common.logging import configure_logging
from cartero_common.metrics import serve_metrics
from cartero_common.settings import ConsumerSettings
from cartero_common.wire import QUEUE_LOGS

log = logging.getLogger(__name__)


# Measured with the log provider (docs/consumers.md, "Prefetch and drain rate"). A message is
# acked only once its persistent event is confirmed, and the broker confirms those when the
# `logs` queue has synced them to disk: tens of milliseconds, a few hundred under steady load
# or on a busy disk. The prefetch window has to cover that much of the drain rate, or the
# process waits on acks with nothing in hand. A provider that is slow per message (HTTP, SMTP)
# gains nothing from a deep buffer, and a deep buffer on one process starves the others the
# monitor starts, so those get a shallow one.
BATCH_PREFETCH = 4000
NETWORK_PREFETCH = 20
# Batches of the idempotent providers when CONSUMER_BATCH_SIZE is not set: one ledger lookup and
# one commit per batch, and a larger commit costs less per id (SQLite, 100 -> 500 ids: 6.7 ->
# 3.2 us each). consumer_logs keeps the setting's default.
DELIVERY_BATCH_SIZE = 250


def default_prefetch(configured: int | None, *, batchable: bool) -> int:
    if configured is not None:
        return configured
    return BATCH_PREFETCH if batchable else NETWORK_PREFETCH


def retry_policy(settings: ConsumerSettings) -> RetryPolicy:
    return RetryPolicy(settings.consumer_max_attempts, parse_delays(settings.consumer_retry_delays))


def breaker_policy(settings: ConsumerSettings) -> BreakerPolicy:
    return BreakerPolicy(
        failures=settings.consumer_breaker_failures,
        cooldown=timedelta(seconds=settings.consumer_breaker_cooldown_seconds),
    )


def connection_name(service: str) -> str:
    return f"{service}@{os.uname().nodename}:{os.getpid()}"


def run_process(loop: ConsumerLoop, *, metrics_port: int | None, metrics_host: str) -> None:
    """Run `loop` as this process's main work until SIGTERM/SIGINT. If a handler is still stuck
    past the grace period (plus a second for the loop's own close), the process exits anyway:
    its unacked messages return to the queue."""
    if metrics_port is not None:
        serve_metrics(metrics_port, host=metrics_host)
    loop.install_signal_handlers()
    threading.Thread(target=_watchdog, args=(loop,), name="grace-watchdog", daemon=True).start()
    loop.run()


def _watchdog(loop: ConsumerLoop) -> None:
    while True:
        requested = loop.stop_requested_at
        if requested is not None and time.monotonic() - requested > loop.grace + 1.0:
            log.error("still busy after the grace period; exiting now", extra={"grace_s": loop.grace})
            logging.shutdown()
            os._exit(70)
        time.sleep(0.2)


def main(
    *,
    prog: str,
    queue: str,
    settings: ConsumerSettings,
    run: Callable[[], None],
    migrate: Callable[[], None] | None = None,
    run_command: str = "run",
    also_replays: tuple[str, ...] = (),
) -> int:
    """`also_replays`: other queues of the process whose dead letters `replay-dlq --queue` moves."""
    configure_logging(prog, settings.log_level)
    parser = argparse.ArgumentParser(prog=f"python -m {prog}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser(run_command, help="consume until SIGTERM (the default)")
    if migrate is not None:
        sub.add_parser("migrate", help="apply the database migrations and exit")
    replay = sub.add_parser("replay-dlq", help=f"move dead letters from {queue}.dlq back to {queue}")
    replay.add_argument("--limit", type=int, default=None, help="move at most N messages (default: all)")
    if also_replays:
        replay.add_argument(
            "--queue", choices=(queue, *also_replays), default=queue, help=f"whose dead letters (default: {queue})"
        )
    args = parser.parse_args()
    if args.command == "migrate" and migrate is not None:
        migrate()
        log.info("database migrated")
        return 0
    if args.command == "replay-dlq":
        if args.limit is not None and args.limit < 0:
            parser.error("--limit must be zero or more")
        chosen: str = getattr(args, "queue", queue)
        moved = replay_dead_letters(
            settings.amqp_url, chosen, limit=args.limit, progress=True, queue_type=settings.cartero_queue_type
        )
        print(f"moved {moved} message(s) from {chosen}.dlq to {chosen}")
        return 0
    run()
    return 0


def loop_from_settings(
    settings: ConsumerSettings,
    *,
    service: str,
    queue: str,
    handler: BatchHandler,
    prefetch: int,
    batchable: bool,
    report_to: str | None = QUEUE_LOGS,
    declares: tuple[str, ...] = (),
    policy: RetryPolicy | None = None,
    batch_size: int | None = None,
) -> ConsumerLoop:
    """A loop with the shared knobs from `settings`. Batches only for idempotent providers: of
    CONSUMER_BATCH_SIZE if set, else of `batch_size` (the setting's default if None)."""
    if "consumer_batch_size" in settings.model_fields_set or batch_size is None:
        batch_size = settings.consumer_batch_size
    return ConsumerLoop(
        url=settings.amqp_url,
        queue=queue,
        handler=handler,
        report_to=report_to,
        declares=declares,
        policy=policy or retry_policy(settings),
        prefetch=prefetch,
        batch_size=batch_size if batchable else 1,
        heartbeat=settings.consumer_heartbeat_seconds,
        grace=settings.consumer_grace_seconds,
        timezone=settings.timezone,
        name=connection_name(service),
        pause_before_ack=settings.consumer_pause_before_ack_seconds,
        queue_type=settings.cartero_queue_type,
    )


def run_delivering(
    settings: ConsumerSettings,
    *,
    service: str,
    queue: str,
    database_url: str,
    prefetch: int | None,
    metrics_port: int,
    batchable: bool,
    make_handler: Callable[[Ledger], BatchHandler],
) -> None:
    """consumer_sms and consumer_email: migrate the dedupe ledger, then consume until stopped."""
    migrate_ledger(database_url)
    engine = make_engine(database_url)
    try:
        handler = make_handler(Ledger(engine, queue))
        loop = loop_from_settings(
            settings,
            service=service,
            queue=queue,
            handler=handler,
            prefetch=default_prefetch(prefetch, batchable=batchable),
            batchable=batchable,
            batch_size=DELIVERY_BATCH_SIZE,
        )
        run_process(loop, metrics_port=metrics_port, metrics_host=settings.metrics_host)
    finally:
        engine.dispose()
