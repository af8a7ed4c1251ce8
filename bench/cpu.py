"""CPU time spent by each part of the suite over a phase, from `/proc/<pid>/stat`: what a request
costs in all, and where, on a machine whose cores every part shares.

A part is a process tree (a service and its uvicorn workers) or every process of a name (the
PostgreSQL backends, RabbitMQ's `beam.smp`): `CpuMeter.parts` names them, `CpuMeter.ms_per` says
how many CPU milliseconds each spent per unit of work between `start()` and `stop()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, str, float] | None:
    """(parent pid, command name, CPU seconds) of `pid`, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is the state: utime and stime are the 14th and 15th fields of the whole line.
    return int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICKS


def _processes() -> dict[int, tuple[int, str, float]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            found[int(entry.name)] = stat
    return found


def tree(root: int) -> Callable[[dict[int, tuple[int, str, float]]], float]:
    """CPU seconds of `root` and every process under it."""

    def seconds(table: dict[int, tuple[int, str, float]]) -> float:
        members, grew = {root}, True
        while grew:
            more = {pid for pid, (parent, _, _) in table.items() if parent in members} - members
            members |= more
            grew = bool(more)
        return sum(table[pid][2] for pid in members if pid in table)

    return seconds


def single(pid: int) -> Callable[[dict[int, tuple[int, str, float]]], float]:
    """CPU seconds of `pid` alone (the load generator: this process, not the services it started)."""
    return lambda table: table[pid][2] if pid in table else 0.0


def named(*names: str) -> Callable[[dict[int, tuple[int, str, float]]], float]:
    """CPU seconds of every process called one of `names`."""
    return lambda table: sum(cpu for _, name, cpu in table.values() if name in names)


class CpuMeter:
    def __init__(self, parts: dict[str, Callable[[dict[int, tuple[int, str, float]]], float]]) -> None:
        self.parts = parts
        self._before: dict[str, float] = {}
        self._spent: dict[str, float] = {}

    def start(self) -> None:
        table = _processes()
        self._before = {name: seconds(table) for name, seconds in self.parts.items()}

    def stop(self) -> None:
        table = _processes()
        self._spent = {name: seconds(table) - self._before[name] for name, seconds in self.parts.items()}

    def ms_per(self, units: float) -> dict[str, float]:
        """Each part's CPU milliseconds per unit of work, and their `total`."""
        each = {name: 1000 * spent / units for name, spent in self._spent.items()}
        return {**each, "total": sum(each.values())}


def rss_kib(pid: int) -> int | None:
    """Resident memory of `pid` in KiB (`VmRSS`), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
