from __future__ import annotations

from typing import Literal

from pydantic import Field

from cartero_common.settings import ConsumerSettings, service_database_url


class Settings(ConsumerSettings):
    database_url: str = service_database_url("consumer_sms")
    consumer_sms_metrics_port: int = Field(default=9101, ge=0, le=65535)  # 0: no metrics endpoint
    # Unset: chosen by provider (see cartero_common.consume.cli.default_prefetch).
    consumer_sms_prefetch: int | None = Field(default=None, ge=1)
    sms_provider: Literal["log", "http"] = "log"
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    sms_gateway_timeout: float = Field(default=10.0, gt=0)
