"""Consumers as local subprocesses of the monitor (the embedded default, `make run`).

The monitor owns them: it tracks each child it started, replaces one that died, and stops them
all (gracefully) when it exits itself. They write to the monitor's stdout, which supervisord
keeps in the monitor's log.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.backend import BackendError, Replica, Stopped, replica_port

log = logging.getLogger(__name__)


@dataclass
class _Child:
    replica: Replica
    process: subprocess.Popen[bytes]
    started: float


class ProcessBackend:
    def __init__(
        self,
        *,
        command: Sequence[str],
        env: Mapping[str, str],
        consumer: str,
        grace: float,
        port_env: str,
        port_base: int = 0,
        port_step: int = 10,
        cwd: str | None = None,
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.consumer = consumer
        self.grace = grace
        self.port_env = port_env
        self.port_base = port_base
        self.port_step = port_step
        self.cwd = cwd
        self._children: dict[int, _Child] = {}
        self._exited: list[Stopped] = []

    def running(self) -> list[Replica]:
        for slot, child in list(self._children.items()):
            code = child.process.poll()
            if code is not None:
                log.warning("consumer exited on its own", extra={"contenedor": child.replica.name, "exit_code": code})
                del self._children[slot]
                self._exited.append(Stopped(child.replica.name, code, time.monotonic() - child.started, killed=False))
        return [child.replica for _, child in sorted(self._children.items())]

    def take_exited(self) -> list[Stopped]:
        exited, self._exited = self._exited, []
        return exited

    def start(self, slot: int) -> Replica:
        env = dict(self.env)
        # Each replica gets its own metrics port, so replicas on one host never collide.
        env[self.port_env] = str(replica_port(slot, base=self.port_base, step=self.port_step))
        try:
            process = subprocess.Popen(self.command, env=env, cwd=self.cwd)  # argv list: no shell involved
        except OSError as exc:
            raise BackendError(f"cannot start {self.command!r}: {exc}") from exc
        replica = Replica(name=f"{self.consumer}-{slot}-{process.pid}", slot=slot)
        self._children[slot] = _Child(replica, process, time.monotonic())
        log.info("consumer started", extra={"contenedor": replica.name, "slot": slot, "port": env[self.port_env]})
        return replica

    def stop(self, replicas: Sequence[Replica]) -> list[Stopped]:
        children = [self._children.pop(r.slot) for r in replicas if r.slot in self._children]
        started = time.monotonic()
        for child in children:
            child.process.send_signal(signal.SIGTERM)
        deadline = started + self.grace
        stopped: list[Stopped] = []
        for child in children:
            killed = False
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("consumer outlived its grace period; killing it", extra={"contenedor": child.replica.name})
                child.process.kill()
                child.process.wait()
                killed = True
            stopped.append(Stopped(child.replica.name, child.process.returncode, time.monotonic() - started, killed))
        return stopped

    def close(self) -> list[Stopped]:
        """Stop every child: they must not outlive the monitor that counts them."""
        return self.stop([child.replica for child in self._children.values()])
