"""What a backend does for the monitor: count its consumers, start more, stop some gracefully."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol


class BackendError(Exception):
    """The backend could not do what it was asked (engine down, image missing, …)."""


@dataclass(frozen=True)
class Replica:
    """One running consumer. `slot` is a small stable index (0, 1, …) that picks its metrics port."""

    name: str
    slot: int


@dataclass(frozen=True)
class Stopped:
    name: str
    exit_code: int | None
    seconds: float
    killed: bool  # True when the grace period ran out and it was killed


class Backend(Protocol):
    def running(self) -> list[Replica]:
        """The consumers running now, by slot; ones that ended on their own are cleared away and
        reported once by `take_exited`."""
        ...

    def take_exited(self) -> list[Stopped]:
        """Consumers that ended without being asked to, since the last call."""
        ...

    def start(self, slot: int) -> Replica: ...

    def stop(self, replicas: Sequence[Replica]) -> list[Stopped]:
        """Stop these together: SIGTERM, then kill whatever outlives the grace period."""
        ...

    def close(self) -> list[Stopped]:
        """The monitor is exiting: release what the backend holds, and say which consumers stopped
        with it (local processes do; containers outlive the monitor)."""
        ...


def free_slots(taken: Iterable[int]) -> Iterator[int]:
    """0, 1, 2, … skipping the slots in use: a new replica takes the lowest free one."""
    used = set(taken)
    slot = 0
    while True:
        if slot not in used:
            yield slot
        slot += 1


def replica_port(slot: int, *, base: int, step: int) -> int:
    """`base + slot * step`; 0 keeps 0 (an ephemeral port, nothing to collide with)."""
    return 0 if base == 0 else base + slot * step
