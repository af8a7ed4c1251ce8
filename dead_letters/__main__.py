"""`python -m dead_letters`: serve the DLQs' API (docs/dead-letters.md)."""

from __future__ import annotations

import sys

import uvicorn

from cartero_common.credentials import MIN_KEY_LENGTH
from cartero_common.logging import configure_logging
from dead_letters.api import create_app
from dead_letters.broker import DeadLetterQueues
from dead_letters.config import Settings


def main() -> int:
    settings = Settings()
    if len(settings.dead_letters_key) < MIN_KEY_LENGTH:
        print(
            f"dead_letters: DEAD_LETTERS_KEY must be a secret of at least {MIN_KEY_LENGTH} characters", file=sys.stderr
        )
        return 2
    configure_logging("dead_letters", settings.log_level)
    app = create_app(
        DeadLetterQueues(settings.amqp_url), key=settings.dead_letters_key, max_list=settings.dead_letters_max_list
    )
    uvicorn.run(
        app, host=settings.dead_letters_host, port=settings.dead_letters_port, log_config=None, access_log=False
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
