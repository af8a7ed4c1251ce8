from __future__ import annotations

from typing import Literal

from cartero_common.settings import ServiceSettings


class Settings(ServiceSettings):
    consumer_sms_metrics_port: int = 9101
    consumer_sms_prefetch: int = 50
    sms_provider: Literal["log"] = "log"
