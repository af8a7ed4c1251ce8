"""A small HTTP/1.1 load generator on raw asyncio streams.

httpx and aiohttp spend more CPU per request than the servers under test on this 2-core machine,
so the generator would become the bottleneck; writing pre-built request bytes on keep-alive
connections costs a fraction of that. Two modes:

- closed loop (`run_closed`): N connections, each sends its next request as soon as the answer
  came: the peak rate;
- open loop (`run_paced`): requests start on a fixed schedule at a given rate, and latency is
  measured from the scheduled start, so a slow server cannot hide its queueing (no coordinated
  omission).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    host: str
    port: int
    method: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float]
    statuses: Counter[int]
    errors: int = 0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
    writer.write(payload)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
            break
    if length:
        await reader.readexactly(length)
    return status


async def run_closed(
    make_request: Callable[[int], bytes], *, host: str, port: int, connections: int, seconds: float
) -> LoadResult:
    """As fast as the server answers, on `connections` keep-alive connections."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    started = time.perf_counter()
    deadline = started + seconds
    counter = iter(range(10**12))

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                payload = make_request(next(counter))
                sent = time.perf_counter()
                try:
                    status = await _exchange(reader, writer, payload)
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[status] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return LoadResult(time.perf_counter() - started, latencies, statuses, errors)


async def run_paced(
    make_request: Callable[[int], bytes], *, host: str, port: int, rate: float, seconds: float, connections: int
) -> LoadResult:
    """`rate` requests per second on a fixed schedule; latency counted from the scheduled start."""
    total = max(1, int(rate * seconds))
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, port))
    started = time.perf_counter()

    async def one(index: int) -> None:
        nonlocal errors
        scheduled = started + index / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        reader, writer = await pool.get()
        try:
            statuses[await _exchange(reader, writer, make_request(index))] += 1
            latencies.append(time.perf_counter() - scheduled)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
        finally:
            pool.put_nowait((reader, writer))

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - started
    while not pool.empty():
        pool.get_nowait()[1].close()
    return LoadResult(elapsed, latencies, statuses, errors)
