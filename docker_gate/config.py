"""The gate's settings: which profile it serves, where the engine's socket is, and, for the
monitor's profile, which images and network the consumers may use."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from cartero_common.settings import ServiceSettings
from docker_gate.rules import Policy


class Settings(ServiceSettings):
    docker_gate_profile: Literal["monitor", "discovery"]
    docker_gate_socket: str = "/var/run/docker.sock"
    docker_gate_host: str = "127.0.0.1"
    docker_gate_port: Annotated[int, Field(ge=1, le=65535)] = 2375
    # Comma-separated; exactly as the monitor names them (MONITOR_DOCKER_IMAGE).
    docker_gate_images: Annotated[tuple[str, ...], NoDecode] = (
        "cartero/consumer_sms:latest",
        "cartero/consumer_email:latest",
    )
    docker_gate_network: str = "cartero"
    docker_gate_max_body_bytes: Annotated[int, Field(ge=1024)] = 1024 * 1024

    @field_validator("docker_gate_images", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @field_validator("docker_gate_network")
    @classmethod
    def _not_the_hosts(cls, value: str) -> str:
        # The host's network namespace (or another container's) is what the gate exists to refuse.
        if not value or value in ("host", "none", "default", "bridge") or ":" in value:
            raise ValueError(f"DOCKER_GATE_NETWORK must name a network of its own, not {value!r}")
        return value

    @property
    def policy(self) -> Policy:
        return Policy(images=frozenset(self.docker_gate_images), network=self.docker_gate_network)
