"""`python -m monitor [--once] [--dry-run]`: scale one queue's consumers (settings: MONITOR_*)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from datetime import timedelta

from pydantic import ValidationError

from cartero_common.clock import system_clock
from cartero_common.logging import configure_logging
from cartero_common.metrics import serve_metrics
from monitor.backend import Backend, BackendError
from monitor.config import REPO_ROOT, Settings
from monitor.decision import Policy
from monitor.docker_backend import DockerBackend
from monitor.events import EventPublisher
from monitor.loop import Monitor
from monitor.process_backend import ProcessBackend
from monitor.sources import AmqpDepth, DepthSource, PrometheusDepth


def make_source(settings: Settings) -> DepthSource:
    if settings.monitor_source == "prometheus":
        return PrometheusDepth(settings.prometheus_url, settings.monitor_queue, settings.vhost)
    return AmqpDepth(settings.amqp_url, settings.monitor_queue)


def make_backend(settings: Settings) -> Backend:
    if settings.monitor_backend == "docker":
        # A container sees only what it is given: the broker, the clock's zone, the log level.
        # The queue type too: a consumer declaring its queues as another type would get a 406.
        env = {
            "AMQP_URL": settings.amqp_url,
            "TIMEZONE": settings.timezone,
            "LOG_LEVEL": settings.log_level,
            "CARTERO_QUEUE_TYPE": settings.cartero_queue_type,
        }
        return DockerBackend.from_env(
            image=settings.docker_image,
            consumer=settings.monitor_consumer,
            queue=settings.monitor_queue,
            monitor=settings.name,
            env={**env, **settings.monitor_consumer_env},
            grace=settings.monitor_grace,
            port_env=settings.replica_port_env,
            port_base=settings.monitor_replica_port_base,
            port_step=settings.monitor_replica_port_step,
            network=settings.monitor_docker_network,
            build_context=settings.build_context,
        )
    # A local child inherits the monitor's environment, as any process under supervisord would.
    return ProcessBackend(
        command=settings.command,
        env={**os.environ, **settings.monitor_consumer_env},
        consumer=settings.monitor_consumer,
        grace=settings.monitor_grace,
        port_env=settings.replica_port_env,
        port_base=settings.monitor_replica_port_base,
        port_step=settings.monitor_replica_port_step,
        cwd=str(REPO_ROOT),
    )


def make_policy(settings: Settings) -> Policy:
    return Policy(
        threshold=settings.monitor_threshold_per_consumer,
        minimum=settings.monitor_min,
        maximum=settings.monitor_max,
        stabilization=timedelta(seconds=settings.monitor_stabilization),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor", description=__doc__)
    parser.add_argument("--once", action="store_true", help="one tick, then exit")
    parser.add_argument("--dry-run", action="store_true", help="print what it would do; change nothing")
    args = parser.parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"monitor: invalid settings\n{exc}", file=sys.stderr)
        return 2
    if args.once and not args.dry_run and settings.monitor_backend == "process":
        parser.error(
            "--once without --dry-run needs the docker backend: local consumers live only as long as the monitor"
        )
    configure_logging("monitor", settings.log_level)
    try:
        backend = make_backend(settings)
    except BackendError as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 1
    monitor = Monitor(
        queue=settings.monitor_queue,
        source=make_source(settings),
        backend=backend,
        events=EventPublisher(settings.amqp_url, clock=system_clock, queue_type=settings.cartero_queue_type),
        policy=make_policy(settings),
        clock=system_clock,
        timezone=settings.timezone,
        dry_run=args.dry_run,
    )
    if args.once:
        try:
            tick = monitor.tick()
            if args.dry_run:
                print(tick.describe(dry_run=True) if tick else f"{settings.monitor_queue}: cannot count consumers")
        finally:
            # Containers outlive the monitor: --once leaves what it started to the next run.
            monitor.source.close()
        return 0 if tick else 1

    if settings.monitor_metrics_port:
        serve_metrics(settings.monitor_metrics_port, host=settings.metrics_host)
    signal.signal(signal.SIGTERM, monitor.stop)
    signal.signal(signal.SIGINT, monitor.stop)
    monitor.run(settings.monitor_interval)
    return 0


if __name__ == "__main__":
    sys.exit(main())
