"""`python -m cartero_common wait-broker`: operator helpers shared by the run scripts."""

from __future__ import annotations

import argparse
import sys

from cartero_common.amqp import wait_for_broker
from cartero_common.settings import ServiceSettings


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m cartero_common")
    sub = parser.add_subparsers(dest="command", required=True)
    wait = sub.add_parser("wait-broker", help="exit 0 once AMQP_URL accepts a connection")
    wait.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    if args.command == "wait-broker":
        return 0 if wait_for_broker(ServiceSettings().amqp_url, timeout=args.timeout) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
