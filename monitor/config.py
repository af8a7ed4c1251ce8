"""The monitor's settings: one process manages one queue, so every field is about that queue."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import pika
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from cartero_common.amqp.urls import first_url
from cartero_common.settings import ServiceSettings
from cartero_common.wire import QUEUE_SMS

ServiceName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)]

# The source tree the consumer images are built from when they are missing: the repository root,
# when the monitor runs from a checkout (its `Dockerfile` has a target per consumer).
REPO_ROOT = Path(__file__).resolve().parents[1]


class Settings(ServiceSettings):
    # `MONITOR_COMMAND=` (as .env.example lists it) means "the default", not an invalid empty list.
    model_config = SettingsConfigDict(env_ignore_empty=True)

    monitor_queue: Annotated[str, Field(min_length=1, max_length=255)] = QUEUE_SMS
    monitor_consumer: ServiceName = "consumer_sms"
    monitor_threshold_per_consumer: Annotated[int, Field(gt=0)] = 10_000
    monitor_min: Annotated[int, Field(ge=0)] = 1
    monitor_max: Annotated[int, Field(ge=1)] = 10
    monitor_interval: Annotated[float, Field(gt=0)] = 10.0
    monitor_stabilization: Annotated[float, Field(ge=0)] = 60.0
    monitor_source: Literal["amqp", "prometheus"] = "amqp"
    monitor_backend: Literal["process", "docker"] = "process"
    prometheus_url: str = "http://localhost:9090"
    monitor_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9104
    monitor_name: str = ""
    monitor_grace: Annotated[float, Field(ge=0)] = 40.0
    monitor_command: list[str] = []
    monitor_consumer_env: dict[str, str] = {}
    monitor_replica_port_env: str = ""
    monitor_replica_port_base: Annotated[int, Field(ge=0, le=65535)] = 0
    monitor_replica_port_step: Annotated[int, Field(ge=0)] = 10
    monitor_docker_image: str = ""
    monitor_docker_network: str = ""
    monitor_docker_build_context: str = ""
    monitor_settings_prefix: str = ""

    @model_validator(mode="before")
    @classmethod
    def _per_queue(cls, data: Any) -> Any:
        """With MONITOR_SETTINGS_PREFIX=MONITOR_SMS_, `MONITOR_SMS_MAX` overrides `MONITOR_MAX`, and
        so on for every MONITOR_* setting: two monitors in one container share one environment."""
        if not isinstance(data, dict) or not data.get("monitor_settings_prefix"):
            return data
        prefix = str(data["monitor_settings_prefix"])
        for name, field in cls.model_fields.items():
            if not name.startswith("monitor_") or name == "monitor_settings_prefix":
                continue
            variable = prefix + name.removeprefix("monitor_").upper()
            if value := os.environ.get(variable):
                structured = get_origin(field.annotation) in (list, dict)
                try:
                    data[name] = json.loads(value) if structured else value
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{variable} is not JSON: {exc}") from None
        return data

    @model_validator(mode="after")
    def _bounds(self) -> Settings:
        if self.monitor_max < self.monitor_min:
            raise ValueError(f"MONITOR_MAX ({self.monitor_max}) is below MONITOR_MIN ({self.monitor_min})")
        return self

    @property
    def name(self) -> str:
        """What the `cartero.monitor` label says: which monitor owns a container."""
        return self.monitor_name or f"monitor-{self.monitor_queue}"

    @property
    def command(self) -> list[str]:
        return self.monitor_command or [sys.executable, "-m", self.monitor_consumer]

    @property
    def replica_port_env(self) -> str:
        """The consumer's metrics-port variable, e.g. `CONSUMER_SMS_METRICS_PORT`."""
        return self.monitor_replica_port_env or f"{self.monitor_consumer.upper()}_METRICS_PORT"

    @property
    def docker_image(self) -> str:
        return self.monitor_docker_image or f"cartero/{self.monitor_consumer}:latest"

    @property
    def build_context(self) -> Path | None:
        context = Path(self.monitor_docker_build_context) if self.monitor_docker_build_context else REPO_ROOT
        return context if (context / "Dockerfile").is_file() and (context / self.monitor_consumer).is_dir() else None

    @property
    def vhost(self) -> str:
        """The vhost of `AMQP_URL`: the consumers' queue lives there, and Prometheus labels it."""
        return str(pika.URLParameters(first_url(self.amqp_url)).virtual_host)
