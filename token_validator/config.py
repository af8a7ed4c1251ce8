from __future__ import annotations

from cartero_common.settings import ServiceSettings


class Settings(ServiceSettings):
    database_url: str = "sqlite:///var/token_validator.db"
    token_validator_host: str = "127.0.0.1"
    token_validator_port: int = 8001
    token_validator_workers: int = 1
    # Held by the senders (`/v1/validate`, refunds) and by the panel and scripts (`/v1/admin/`).
    validator_service_key: str = ""
    validator_admin_key: str = ""
