"""Consumers as containers, through the Docker Engine API (the `docker` SDK; no shell, no CLI).

Containers are found by label, never by name: `cartero.role=consumer`, `cartero.queue=<queue>`
and `cartero.monitor=<monitor name>` mark the ones this monitor manages, and nothing without
all three is ever stopped or removed. The engine is whatever `DOCKER_HOST` names (a unix socket,
or `tcp://` to the Docker API gate, docker_gate/). Containers outlive the monitor: a restarted monitor adopts them.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from cartero_common.containers import CONSUMER, CONSUMER_ROLE, MONITOR, QUEUE, ROLE, SLOT
from monitor.backend import BackendError, Replica, Stopped, replica_port

log = logging.getLogger(__name__)

_ALIVE = {"created", "running", "restarting", "paused"}
_ENGINE_ERRORS = (docker.errors.DockerException, requests.RequestException)
_BUILD_TIMEOUT = 900


class DockerBackend:
    def __init__(
        self,
        *,
        client: docker.DockerClient,
        image: str,
        consumer: str,
        queue: str,
        monitor: str,
        env: Mapping[str, str],
        grace: float,
        port_env: str,
        port_base: int = 0,
        port_step: int = 10,
        network: str = "",
        build_context: Path | None = None,
    ) -> None:
        self.client = client
        self.image = image
        self.consumer = consumer
        self.queue = queue
        self.monitor = monitor
        self.env = dict(env)
        self.grace = grace
        self.port_env = port_env
        self.port_base = port_base
        self.port_step = port_step
        self.network = network
        self.build_context = build_context
        self._image_ready = False
        self._exited: list[Stopped] = []

    @classmethod
    def from_env(cls, **kwargs: Any) -> DockerBackend:
        """Connect as `DOCKER_HOST` (and `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`) say."""
        try:
            client = docker.from_env()
        except _ENGINE_ERRORS as exc:
            raise BackendError(f"no Docker engine at DOCKER_HOST: {exc}") from exc
        return cls(client=client, **kwargs)

    @property
    def labels(self) -> dict[str, str]:
        return {ROLE: CONSUMER_ROLE, QUEUE: self.queue, MONITOR: self.monitor}

    def _ours(self) -> list[Any]:
        filters = {"label": [f"{key}={value}" for key, value in self.labels.items()]}
        try:
            return list(self.client.containers.list(all=True, filters=filters))
        except _ENGINE_ERRORS as exc:
            raise BackendError(f"cannot list containers: {exc}") from exc

    def running(self) -> list[Replica]:
        alive: list[Replica] = []
        for container in self._ours():
            if container.status in _ALIVE:
                alive.append(Replica(container.name, _slot(container)))
                continue
            # Ours (all three labels) and finished: clear it away so its slot can be reused.
            code = container.attrs.get("State", {}).get("ExitCode")
            log.warning("consumer container exited on its own", extra={"contenedor": container.name, "exit_code": code})
            self._exited.append(Stopped(container.name, code, 0.0, killed=False))
            try:
                container.remove(v=True)
            except _ENGINE_ERRORS as exc:
                log.warning(
                    "could not remove an exited consumer", extra={"contenedor": container.name, "error": str(exc)}
                )
        return sorted(alive, key=lambda r: r.slot)

    def take_exited(self) -> list[Stopped]:
        exited, self._exited = self._exited, []
        return exited

    def ensure_image(self) -> None:
        """Use the image if the engine has it; build it (the `Dockerfile`'s target named after the
        consumer) if not."""
        if self._image_ready:
            return
        try:
            self.client.images.get(self.image)
        except docker.errors.ImageNotFound:
            self._build()
        except _ENGINE_ERRORS as exc:
            raise BackendError(f"cannot inspect image {self.image}: {exc}") from exc
        self._image_ready = True

    def _build(self) -> None:
        if self.build_context is None:
            raise BackendError(
                f"image {self.image} is missing and there is no Dockerfile (target {self.consumer}) to build it from "
                "(set MONITOR_DOCKER_BUILD_CONTEXT, or build the image first)"
            )
        log.info("building the consumer image", extra={"image": self.image, "context": str(self.build_context)})
        started = time.monotonic()
        try:
            self.client.images.build(
                path=str(self.build_context),
                dockerfile="Dockerfile",
                target=self.consumer,
                tag=self.image,
                rm=True,
                forcerm=True,
                timeout=_BUILD_TIMEOUT,
            )
        except _ENGINE_ERRORS as exc:
            raise BackendError(f"building {self.image} failed: {exc}") from exc
        log.info("consumer image built", extra={"image": self.image, "seconds": round(time.monotonic() - started, 1)})

    def start(self, slot: int) -> Replica:
        self.ensure_image()
        name = f"cartero-{self.consumer}-{slot}-{secrets.token_hex(3)}"
        env = dict(self.env)
        # Containers on the host network share its ports; each replica gets its own.
        env[self.port_env] = str(replica_port(slot, base=self.port_base, step=self.port_step))
        network: dict[str, Any] = {}
        if self.network == "host":
            network["network_mode"] = "host"
        elif self.network:
            network["network"] = self.network
        try:
            container = self.client.containers.run(
                self.image,
                name=name,
                detach=True,
                environment=env,
                labels={**self.labels, CONSUMER: self.consumer, SLOT: str(slot)},
                stop_signal="SIGTERM",
                **network,
            )
        except _ENGINE_ERRORS as exc:
            raise BackendError(f"cannot start a {self.consumer} container: {exc}") from exc
        log.info("consumer container started", extra={"contenedor": name, "slot": slot, "id": container.short_id})
        return Replica(name, slot)

    def stop(self, replicas: Sequence[Replica]) -> list[Stopped]:
        if not replicas:
            return []
        by_name = {c.name: c for c in self._ours()}
        targets = [by_name[r.name] for r in replicas if r.name in by_name]
        with ThreadPoolExecutor(max_workers=len(targets) or 1) as pool:
            return [s for s in pool.map(self._stop_one, targets) if s is not None]

    def _stop_one(self, container: Any) -> Stopped | None:
        started = time.monotonic()
        try:
            # SIGTERM, then SIGKILL after `grace` seconds; the consumer finishes the message in hand.
            container.stop(timeout=int(round(self.grace)))
            container.reload()
            code = container.attrs.get("State", {}).get("ExitCode")
            seconds = time.monotonic() - started
            container.remove(v=True)
        except docker.errors.NotFound:
            return None  # already gone
        except _ENGINE_ERRORS as exc:
            log.error("could not stop a consumer container", extra={"contenedor": container.name, "error": str(exc)})
            return None
        killed = code == 137 or seconds >= self.grace + 0.5
        return Stopped(container.name, code, seconds, killed)

    def close(self) -> list[Stopped]:
        self.client.close()
        return []


def _slot(container: Any) -> int:
    try:
        return int(container.labels.get(SLOT, ""))
    except ValueError:
        return 1_000_000  # labelled by hand without a slot: sorted last, so stopped first
