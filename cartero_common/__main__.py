"""`python -m cartero_common wait-broker | rabbitmq-setup`: operator helpers shared by the run
scripts and the compose stack."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from cartero_common.amqp import wait_for_broker
from cartero_common.logging import configure_logging
from cartero_common.settings import ServiceSettings


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m cartero_common")
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait-broker", help="exit 0 once AMQP_URL accepts a connection")
    wait.add_argument("--timeout", type=float, default=5.0)
    setup = sub.add_parser(
        "rabbitmq-setup",
        help="apply rabbitmq/definitions.json (vhost, queues, policies) and the users from the environment",
    )
    setup.add_argument("--definitions", type=Path, help="default: RABBITMQ_DEFINITIONS or rabbitmq/definitions.json")
    setup.add_argument("--vhost", help="default: RABBITMQ_VHOST or cartero")
    args = parser.parse_args()
    if args.command == "wait-broker":
        return 0 if wait_for_broker(ServiceSettings().amqp_url, timeout=args.timeout) else 1
    if args.command == "rabbitmq-setup":
        return rabbitmq_setup(args.definitions, args.vhost)
    return 2


def rabbitmq_setup(definitions: Path | None, vhost: str | None) -> int:
    from cartero_common.rabbitmq_setup import SetupError, SetupSettings, run

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
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
