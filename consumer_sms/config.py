from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from cartero_common.settings import ConsumerSettings


class Settings(ConsumerSettings):
    # CONSUMER_SMS_DATABASE_URL first, so one environment can serve every service (make run);
    # DATABASE_URL otherwise (a container of its own).
    database_url: str = Field(
        default="sqlite:///var/consumer_sms.db",
        validation_alias=AliasChoices("consumer_sms_database_url", "database_url"),
    )
    consumer_sms_metrics_port: int = Field(default=9101, ge=0, le=65535)  # 0: no metrics endpoint
    # Unset: chosen by provider (see cartero_common.consumer_cli.default_prefetch).
    consumer_sms_prefetch: int | None = Field(default=None, ge=1)
    sms_provider: Literal["log", "http"] = "log"
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    sms_gateway_timeout: float = Field(default=10.0, gt=0)
