from __future__ import annotations

import ipaddress

from pydantic import AliasChoices, Field, field_validator

from cartero_common.settings import ServiceSettings


class Settings(ServiceSettings):
    sender_host: str = "127.0.0.1"
    sender_port: int = 8000
    sender_workers: int = 1
    # The broker must confirm within this many seconds or the client gets a 503.
    publish_timeout: float = 2.0
    # AMQP heartbeat to the broker node: one that stops answering (cut off rather than closed) is
    # given up after about twice this, and the next node of AMQP_URL used.
    amqp_heartbeat_seconds: int = Field(default=10, ge=1, le=600)
    max_body_bytes: int = 64 * 1024
    # Every request's token is checked here; slower than `validator_timeout` seconds → 503.
    validator_url: str = "http://127.0.0.1:8001"
    validator_service_key: str = ""
    validator_timeout: float = 2.0
    # `GET /v1/messages/{id}` asks the message log (its status route, with the status key only:
    # never the read key); slower than `status_timeout` seconds → 503 status_unavailable.
    consumer_logs_url: str = "http://127.0.0.1:8003"
    consumer_logs_status_key: str = ""
    status_timeout: float = 2.0
    # Addresses or networks (comma-separated) of the reverse proxies in front of the sender: only
    # from them is X-Forwarded-For believed about who the client is (the address refusals are
    # stored with). None by default. FORWARDED_ALLOW_IPS (uvicorn's name) is read too.
    trusted_proxies: str = Field("", validation_alias=AliasChoices("trusted_proxies", "forwarded_allow_ips"))

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for proxy in (item.strip() for item in value.split(",")):
            if proxy and proxy != "*":
                try:
                    ipaddress.ip_network(proxy, strict=False)
                except ValueError:
                    raise ValueError(f"{proxy!r} is not an IP address or network") from None
        return value

    def trusted_proxy_list(self) -> list[str]:
        return [item.strip() for item in self.trusted_proxies.split(",") if item.strip()]
