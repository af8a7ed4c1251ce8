from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from cartero_common.settings import ConsumerSettings, comma_list, service_database_url
from consumer_email.providers import server_name

DEFAULT_SMTP_HOST = "localhost"
# A DNS name or IPv4 address; an IPv6 address goes in brackets, `[::1]:25`.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")


class Settings(ConsumerSettings):
    database_url: str = service_database_url("consumer_email")
    consumer_email_metrics_port: int = Field(default=9102, ge=0, le=65535)  # 0: no metrics endpoint
    # Unset: chosen by provider (see cartero_common.consume.cli.default_prefetch).
    consumer_email_prefetch: int | None = Field(default=None, ge=1)
    email_provider: Literal["smtp", "file"] = "smtp"
    smtp_from: str = "Cartero <cartero@localhost>"
    mail_dir: str = "var/mail"
    # The SMTP servers in the order to try them, `host[:port]` comma-separated, the port
    # SMTP_PORT when left out (docs/failover.md).
    smtp_hosts: Annotated[tuple[str, ...], NoDecode] = ()
    # The one-server form of SMTP_HOSTS, from before failover; setting both is refused.
    # Neither set: localhost.
    smtp_host: str | None = None
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "ssl"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = Field(default=10.0, gt=0)

    @field_validator("smtp_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return comma_list(value)

    @field_validator("smtp_hosts")
    @classmethod
    def _hosts(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        for host in hosts:
            split_host(host, default_port=1)
        return hosts

    @field_validator("smtp_host")
    @classmethod
    def _host(cls, host: str | None) -> str | None:
        if host is None or not host.strip():
            return None
        bare = host.strip().removeprefix("[").removesuffix("]")
        if not (_HOSTNAME.fullmatch(bare) or _ipv6(bare)):
            raise ValueError(f"not a host name or address: {host!r}")
        return bare

    @model_validator(mode="after")
    def _one_way_to_name_servers(self) -> Settings:
        if self.smtp_host and self.smtp_hosts:
            raise ValueError("set SMTP_HOSTS or SMTP_HOST, not both (SMTP_HOST is the one-server form of SMTP_HOSTS)")
        names = [server_name(host, port) for host, port in self.smtp_servers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"an SMTP server is listed twice in SMTP_HOSTS: {', '.join(repeated)}")
        return self

    @property
    def smtp_servers(self) -> list[tuple[str, int]]:
        """(host, port) of each SMTP server, in order."""
        if self.smtp_hosts:
            return [split_host(item, default_port=self.smtp_port) for item in self.smtp_hosts]
        return [(self.smtp_host or DEFAULT_SMTP_HOST, self.smtp_port)]


def split_host(item: str, *, default_port: int) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` as (host, port)."""
    try:
        parts = urlsplit(f"//{item}")
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"not host[:port]: {item!r}: {exc}") from None
    host = parts.hostname or ""
    bracketed = parts.netloc.startswith("[")
    if "@" in parts.netloc or parts.path or parts.query or parts.fragment or not host:
        raise ValueError(f"not host[:port]: {item!r}")
    if not (_ipv6(host) if bracketed else _HOSTNAME.fullmatch(host)):
        raise ValueError(f"not a host name or address: {item!r}")
    if port == 0:
        raise ValueError(f"port 0 in {item!r}")
    return host, port or default_port


def _ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False
