from __future__ import annotations

from pydantic import Field, field_validator

from cartero_common.amqp.topology import parse_delays
from cartero_common.settings import ConsumerSettings

# About 25.6 hours in all: a receiver down for a day still gets every event once it is back.
DEFAULT_RETRY_DELAYS = "10s,1m,5m,30m,2h,5h,8h,10h"


class Settings(ConsumerSettings):
    # Where the owners' endpoints are read (`GET /v1/webhooks/endpoints`), with a key that opens
    # that route only; `run` refuses to start without one.
    validator_url: str = "http://127.0.0.1:8001"
    validator_webhooks_key: str = ""
    # How long an owner's endpoints are kept before they are asked for again.
    webhook_endpoints_cache_seconds: float = Field(default=5.0, ge=0)
    # The wait before each new attempt at a delivery (`ms`/`s`/`m`/`h`); after the last one, the
    # delivery goes to webhook_deliveries.dlq.
    webhook_retry_delays: str = DEFAULT_RETRY_DELAYS
    # One POST may take this long; the receiver's answer after it counts as a failure.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=30)
    # Deliveries in flight at once: a slow receiver holds one of them, not the others.
    webhook_concurrency: int = Field(default=8, ge=1, le=64)
    # Endpoints in private, loopback… ranges may be called (a demo or a test, never production).
    webhooks_allow_private_urls: bool = False
    consumer_webhooks_metrics_port: int = 9106

    @field_validator("webhook_retry_delays")
    @classmethod
    def _webhook_delays(cls, value: str) -> str:
        parse_delays(value)
        return value
