"""`python -m token_panel`: serve the admins' web UI with uvicorn."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

from cartero_common.logging import configure_logging
from token_panel.config import Settings, settings_problems


def main() -> int:
    settings = Settings()
    configure_logging("token_panel", settings.log_level)
    problems = settings_problems(settings)
    if problems:
        for problem in problems:
            print(f"token_panel: {problem}", file=sys.stderr)
        return 2
    uvicorn.run("token_panel.app:create_app", factory=True, **server_options(settings))
    return 0


def server_options(settings: Settings) -> dict[str, Any]:
    return {
        "host": settings.token_panel_host,
        "port": settings.token_panel_port,
        # One process is enough for a handful of admins. Sessions and failed sign-ins are kept by
        # the validator, so more processes (or replicas) behind one address would work as well.
        "workers": 1,
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 (or FORWARDED_ALLOW_IPS); the app
        # believes it from TRUSTED_PROXIES only (`app.create_app`).
        "proxy_headers": False,
        "log_config": None,
        "access_log": False,
    }


if __name__ == "__main__":
    sys.exit(main())
