from __future__ import annotations

from pydantic import Field

from cartero_common.settings import ConsumerSettings


class Settings(ConsumerSettings):
    database_url: str = "sqlite:///var/consumer_logs.db"
    consumer_logs_host: str = "127.0.0.1"
    consumer_logs_port: int = 8003
    consumer_logs_prefetch: int = Field(default=500, ge=1)
