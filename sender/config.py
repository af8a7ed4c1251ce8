from __future__ import annotations

from cartero_common.settings import ServiceSettings


class Settings(ServiceSettings):
    sender_host: str = "127.0.0.1"
    sender_port: int = 8000
    sender_workers: int = 1
    # The broker must confirm within this many seconds or the client gets a 503.
    publish_timeout: float = 2.0
    max_body_bytes: int = 64 * 1024
    # Every request's token is checked here; slower than `validator_timeout` seconds → 503.
    validator_url: str = "http://127.0.0.1:8001"
    validator_service_key: str = ""
    validator_timeout: float = 2.0
