from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from cartero_common.redact import public_url
from cartero_common.settings import ConsumerSettings, comma_list, service_database_url


class Settings(ConsumerSettings):
    database_url: str = service_database_url("consumer_sms")
    consumer_sms_metrics_port: int = Field(default=9101, ge=0, le=65535)  # 0: no metrics endpoint
    # Unset: chosen by provider (see cartero_common.consume.cli.default_prefetch).
    consumer_sms_prefetch: int | None = Field(default=None, ge=1)
    sms_provider: Literal["log", "http"] = "log"
    # The gateways in the order to try them (comma-separated; docs/failover.md).
    sms_gateway_urls: Annotated[tuple[str, ...], NoDecode] = ()
    # The one-gateway form of SMS_GATEWAY_URLS, from before failover; setting both is refused.
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    sms_gateway_timeout: float = Field(default=10.0, gt=0)

    @field_validator("sms_gateway_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("sms_gateway_urls")
    @classmethod
    def _gateway_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            check_gateway_url(url)
        names = [public_url(url) for url in urls]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"a gateway is listed twice: {', '.join(repeated)}")
        return urls

    @field_validator("sms_gateway_url")
    @classmethod
    def _gateway_url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        return check_gateway_url(url.strip())

    @model_validator(mode="after")
    def _one_way_to_name_gateways(self) -> Settings:
        if self.sms_gateway_url and self.sms_gateway_urls:
            raise ValueError(
                "set SMS_GATEWAY_URLS or SMS_GATEWAY_URL, not both "
                "(SMS_GATEWAY_URL is the one-gateway form of SMS_GATEWAY_URLS)"
            )
        return self

    @property
    def gateway_urls(self) -> tuple[str, ...]:
        return self.sms_gateway_urls or ((self.sms_gateway_url,) if self.sms_gateway_url else ())


def check_gateway_url(url: str) -> str:
    """An absolute http(s) URL with a host (and a valid port, if any)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"not a gateway URL: {public_url_or_nothing(url)}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {public_url_or_nothing(url)}")
    return url


def public_url_or_nothing(url: str) -> str:
    """What may be printed of a bad URL: its public part, or nothing if even that fails."""
    try:
        return repr(public_url(url))
    except ValueError:
        return "(unreadable)"
