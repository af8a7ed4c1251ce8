"""Settings base: every service reads configuration from environment variables only."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import AliasChoices, Field, FilePath, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cartero_common.amqp.queue_type import CLASSIC, QueueType
from cartero_common.amqp.urls import split_urls

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"


class ServiceSettings(BaseSettings):
    """Names shared by every service (docs/design.md §3). Field names are the env var names."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # One node, or a comma-separated list of the nodes of one cluster (cartero_common/amqp/urls.py):
    # every client starts on a random one and fails over to the others.
    amqp_url: str = DEFAULT_AMQP_URL
    # PEM file of the CA that signed the broker's certificate, for amqps:// URLs; unset: the
    # system's trust store. Declared here too so that a missing file stops a service at start;
    # the connections read it through cartero_common/amqp/tls.py (which may not import this
    # module: settings already reaches the amqp package for the retry delays).
    amqp_ca_file: FilePath | None = None
    # `classic` or `quorum`: the type every queue of ours is declared with (docs/scaling-out.md).
    # The same value everywhere, rabbitmq-setup included: a queue's type cannot change, and a
    # declare of the other type is refused with 406.
    cartero_queue_type: QueueType = CLASSIC
    timezone: str = "Europe/Madrid"
    log_level: str = "INFO"
    # Where the services without an HTTP API of their own (the consumers, the monitor) serve
    # `/metrics`. This host only by default: a process started outside a container is scraped
    # from the same machine. The images set 0.0.0.0, for Prometheus on the container network.
    metrics_host: str = "127.0.0.1"

    @field_validator("amqp_url")
    @classmethod
    def _node_list(cls, value: str) -> str:
        return ",".join(split_urls(value))

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()


class ConsumerSettings(ServiceSettings):
    """What every consumer shares (the consume loop's knobs); each adds its own prefetch, port…"""

    consumer_max_attempts: int = Field(default=5, ge=1, le=100)
    # Seconds before each retry (`ms`/`s`/`m` suffixes allowed); the last one repeats.
    consumer_retry_delays: str = "5s,30s,2m,10m"
    consumer_grace_seconds: float = Field(default=30.0, gt=0)
    consumer_heartbeat_seconds: int = Field(default=60, ge=0)
    consumer_max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    consumer_batch_size: int = Field(default=100, ge=1)
    # Fault injection for the crash tests: hold each ack this long. Never set it in production.
    consumer_pause_before_ack_seconds: float = Field(default=0.0, ge=0)
    # Provider failover (cartero_common.consume.failover): a provider's circuit opens after this
    # many transient failures in a row, and lets one probe through after the cool-down.
    consumer_breaker_failures: int = Field(default=5, ge=1)
    consumer_breaker_cooldown_seconds: float = Field(default=30.0, gt=0)
    # `migrate` as the database's owner (PostgreSQL): the role the service runs as, granted row
    # access to the tables afterwards (cartero_common.pg_roles). Empty: no grants.
    database_runtime_role: str = ""

    @field_validator("consumer_retry_delays")
    @classmethod
    def _delays(cls, value: str) -> str:
        from cartero_common.amqp.topology import parse_delays

        parse_delays(value)
        return value


S = TypeVar("S", bound=BaseSettings)


def load_settings(settings: type[S], prog: str) -> S:
    """`settings()` from the environment, or exit with one line per bad variable. The values are
    left out of the message: a URL setting may carry a password."""
    try:
        return settings()
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(part) for part in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise SystemExit(f"{prog}: invalid settings, not starting\n" + "\n".join(lines)) from None


def comma_list(value: object) -> object:
    """A `NoDecode` list setting's env value, `a, b,c`, as its items (blanks dropped); a list
    given in code passes as it is."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def service_database_url(service: str) -> Any:
    """`<SERVICE>_DATABASE_URL` first, so one environment can serve every process (make run),
    then `DATABASE_URL` (a container of its own); SQLite under `var/` by default."""
    return Field(
        default=f"sqlite:///var/{service}.db",
        validation_alias=AliasChoices(f"{service}_database_url", "database_url"),
    )
