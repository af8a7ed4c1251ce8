"""TLS for `amqps://` broker URLs, the same for pika (blocking, consumers) and aio-pika (sender).

The server's certificate is verified against `AMQP_CA_FILE` (a PEM bundle: the CA that signed
the broker's certificate), or against the system's trust store when that is unset, and its name
must match the URL's host. There is no switch to turn verification off: a TLS connection that
does not check who answers protects against nobody. A plain `amqp://` URL gets no TLS at all.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import FilePath
from pydantic_settings import BaseSettings, SettingsConfigDict


class AmqpTlsSettings(BaseSettings):
    """AMQP_CA_FILE, as `ServiceSettings.amqp_ca_file` reads it (see there)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    amqp_ca_file: FilePath | None = None


def is_tls(url: str) -> bool:
    return url[:8].lower() == "amqps://"


def client_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifies the chain and the host name (Python's defaults for a server), TLS 1.2 or newer."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def context_for(url: str, ca_file: Path | None = None) -> ssl.SSLContext | None:
    """The context to connect to `url` with, None for a plain `amqp://` URL. `ca_file` None
    means the configured one (`AMQP_CA_FILE`, read now, so every process and each of its
    reconnections follows the environment it was started with)."""
    if not is_tls(url):
        return None
    return client_context(ca_file if ca_file is not None else AmqpTlsSettings().amqp_ca_file)
