"""`python -m token_panel`: serve the admins' web UI with uvicorn."""

from __future__ import annotations

import sys

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
    uvicorn.run(
        "token_panel.app:create_app",
        factory=True,
        host=settings.token_panel_host,
        port=settings.token_panel_port,
        # One process: failed sign-ins and signed-out sessions are counted in its memory.
        workers=1,
        log_config=None,
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
