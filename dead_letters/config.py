from __future__ import annotations

from cartero_common.settings import ServiceSettings


class Settings(ServiceSettings):
    dead_letters_host: str = "127.0.0.1"
    dead_letters_port: int = 8004
    # Every call but the health and metrics routes presents it as a bearer token (the panel);
    # `python -m dead_letters` refuses to start without one of 16+ characters.
    dead_letters_key: str = ""
    # Most messages one listing shows (and holds unacked while it reads them).
    dead_letters_max_list: int = 500
