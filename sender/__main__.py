"""`python -m sender`: serve the API with uvicorn."""

from __future__ import annotations

import sys

import uvicorn

from cartero_common.logging import configure_logging
from sender.config import Settings


def main() -> None:
    settings = Settings()
    configure_logging("sender", settings.log_level)
    if not settings.validator_service_key:
        # Without it every request would fail closed with a 503; say why at once instead.
        sys.exit("sender: VALIDATOR_SERVICE_KEY must be set (the token validator's service credential)")
    uvicorn.run(
        "sender.app:create_app",
        factory=True,
        host=settings.sender_host,
        port=settings.sender_port,
        workers=settings.sender_workers,
        log_config=None,
        access_log=False,
        # X-Forwarded-For only from the listed proxies; with none, only the connection counts.
        proxy_headers=bool(settings.trusted_proxy_list()),
        forwarded_allow_ips=",".join(settings.trusted_proxy_list()),
    )


if __name__ == "__main__":
    main()
