"""Waiting for a set of local services to answer their readiness checks (`make run`'s ready line).

Each service is a name, a URL that answers 200 once it is ready, and its log file. Every service is
polled until all answer or the time is up. A service that never answered is reported with what
its check last saw and the last lines of its log, so whoever ran `make run` can see why.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    log: Path | None = None


@dataclass(frozen=True)
class NotReady:
    service: Service
    last_seen: str  # the check's last answer, or why there was none

    def describe(self) -> str:
        lines = [f"{self.service.name} did not become ready ({self.service.url}: {self.last_seen})"]
        if self.service.log is not None:
            lines.append(f"  last lines of {self.service.log}:")
            lines.extend(f"    {line}" for line in tail(self.service.log, LOG_TAIL_LINES))
        return "\n".join(lines)


def parse(spec: str, log_dir: Path | None) -> Service:
    """`name=url`; the log is `<log_dir>/<name>.log` when a log dir is given."""
    name, sep, url = spec.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise ValueError(f"expected name=http://…, got {spec!r}")
    return Service(name, url, log_dir / f"{name}.log" if log_dir is not None else None)


def check(url: str, timeout: float = 2.0) -> str | None:
    """None once the URL answers 200; otherwise what it answered, or why it could not."""
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None if response.status_code == 200 else f"answered {response.status_code}"


def wait_ready(
    services: Iterable[Service],
    *,
    timeout: float,
    interval: float = 0.2,
    probe: Callable[[str], str | None] = check,
    alive: Callable[[], bool] = lambda: True,
) -> list[NotReady]:
    """Poll until every service is ready, `alive()` turns false, or `timeout` seconds pass.
    Returns those never ready (empty: all are)."""
    waiting = {service.name: service for service in services}
    last_seen = dict.fromkeys(waiting, "no answer yet")
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline and alive():
        for name, service in list(waiting.items()):
            seen = probe(service.url)
            if seen is None:
                del waiting[name]
            else:
                last_seen[name] = seen
        if waiting:
            time.sleep(interval)
    return [NotReady(service, last_seen[name]) for name, service in waiting.items()]


def tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return [f"(no log: {exc.strerror})"]
    return text.splitlines()[-lines:] or ["(empty)"]
