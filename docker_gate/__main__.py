"""`python -m docker_gate`: serve one profile of the Docker API gate (settings: DOCKER_GATE_*)."""

from __future__ import annotations

import logging
import os
import sys

from aiohttp import web
from pydantic import ValidationError

from cartero_common.logging import configure_logging
from docker_gate.config import Settings
from docker_gate.proxy import make_app

log = logging.getLogger("docker_gate")


def main() -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"docker_gate: invalid settings\n{exc}", file=sys.stderr)
        return 2
    configure_logging("docker_gate", settings.log_level)
    if not os.access(settings.docker_gate_socket, os.R_OK | os.W_OK):
        # Still serve (/healthz answers; requests get a 502) so the cause is in the log and the probe.
        log.error(
            "cannot use the engine socket: run the gate in the socket's group (DOCKER_GID: stat -c %g on it)",
            extra={"socket": settings.docker_gate_socket, "uid": os.getuid(), "groups": os.getgroups()},
        )
    app = make_app(
        socket_path=settings.docker_gate_socket,
        profile=settings.docker_gate_profile,
        policy=settings.policy,
        max_body_bytes=settings.docker_gate_max_body_bytes,
    )
    log.info(
        "docker gate serving",
        extra={
            "profile": settings.docker_gate_profile,
            "port": settings.docker_gate_port,
            "images": sorted(settings.docker_gate_images),
            "network": settings.docker_gate_network,
        },
    )
    web.run_app(app, host=settings.docker_gate_host, port=settings.docker_gate_port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
