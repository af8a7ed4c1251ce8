"""`python -m bench --soak [--quick]`: steady load at half the peak through the whole suite, and
what it leaves behind; writes bench/results-soak.json.

The validator and the sender, consumer_sms (log provider) and consumer_logs run as real processes,
each on a PostgreSQL database of its own, on an isolated vhost (`bench.services.running_suite`).
The peak is measured first through that suite (closed loop, consumers running); then an open loop
at half of it runs in back-to-back windows of a minute (`--quick`: 5 s), each with its own p99.
Every process's resident memory (uvicorn's workers included) is read from /proc after a warm-up
at the soak's rate and again at the end. After the load, every accepted message must have its
`consumido` event in consumer_logs' database.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2

from bench import report
from bench.cpu import rss_kib
from bench.load import LoadResult, Request, run_closed, run_paced
from bench.report import machine, soak_readme, table, versions
from bench.services import Suite, create_token, running_suite
from cartero_common.wire import QUEUE_LOGS, QUEUE_SMS
from tests.support import queue_depth

RESULTS = Path(__file__).with_name("results-soak.json")


@dataclass(frozen=True)
class SoakPlan:
    quick: bool

    @property
    def window_seconds(self) -> float:
        return 5.0 if self.quick else 60.0

    @property
    def windows(self) -> int:
        return 4 if self.quick else 10

    @property
    def peak_seconds(self) -> float:
        return 1.0 if self.quick else 4.0

    @property
    def warmup_seconds(self) -> float:
        # Before the peak, and again at the soak's rate before memory is first read.
        return 0.5 if self.quick else 10.0

    @property
    def connections(self) -> int:
        return 8 if self.quick else 32

    @property
    def drain_timeout(self) -> float:
        return 30.0 if self.quick else 120.0


def progress(text: str) -> None:
    report.progress(text, mode="soak")


def sms_request(port: int, token: str) -> Callable[[int], bytes]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    body = json.dumps({"mensaje": "Hola desde el banco de pruebas", "telefono": "+34600111222"}).encode()
    payload = Request("127.0.0.1", port, "POST", "/v1/sms", body, headers).encode()
    return lambda _: payload


def failures(result: LoadResult) -> int:
    """Answers other than 2xx, and connections lost."""
    return result.errors + sum(n for status, n in result.statuses.items() if not 200 <= status < 300)


# --- memory -------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        # The command name in brackets may hold spaces: the parent's pid is the 2nd field after it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        found.setdefault(ppid, []).append(int(entry.name))
    return found


def _kind(pid: int) -> str:
    """What a child of a service is: a uvicorn worker or multiprocessing's resource tracker."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "child"
    if b"resource_tracker" in command:
        return "resource_tracker"
    return "worker" if b"spawn_main" in command else "child"


def rss(processes: dict[str, subprocess.Popen[bytes]]) -> dict[str, int]:
    """Resident KiB of each process started and of each of its descendants, labelled `name` and
    `name/<kind> <pid>` (uvicorn's workers are children of the process started)."""
    children = _children()
    sampled: dict[str, int] = {}
    for name, process in processes.items():
        pending = [(name, process.pid)]
        while pending:
            label, pid = pending.pop()
            kib = rss_kib(pid)
            if kib is not None:
                sampled[label] = kib
            pending += [(f"{name}/{_kind(child)} {child}", child) for child in sorted(children.get(pid, []))]
    return sampled


def growth(start: dict[str, int], end: dict[str, int]) -> dict[str, dict[str, float]]:
    return {
        label: {"start_kib": kib, "end_kib": end[label], "growth": (end[label] - kib) / kib}
        for label, kib in start.items()
        if label in end and kib
    }


# --- consumption --------------------------------------------------------------------------------


def consumed(database_url: str) -> int:
    """Messages with a `consumido` event in consumer_logs' database."""
    dsn = database_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT message_id) FROM events WHERE evento = 'consumido'")
        row = cursor.fetchone()
    connection.close()
    return int(row[0]) if row else 0


def backlog(amqp_url: str) -> dict[str, int]:
    return {queue: queue_depth(amqp_url, queue) for queue in (QUEUE_SMS, QUEUE_LOGS)}


def wait_consumed(suite: Suite, accepted: int, timeout: float) -> tuple[int, float]:
    """Waits until every accepted message is consumed, or `timeout`; returns how many are
    consumed and the seconds waited."""
    started = time.monotonic()
    while True:
        done = consumed(suite.logs_database_url)
        waited = time.monotonic() - started
        if done >= accepted or waited > timeout:
            return done, waited
        time.sleep(0.25)


# --- the run ------------------------------------------------------------------------------------


def paced(suite: Suite, token: str, rate: float, seconds: float, connections: int) -> LoadResult:
    make = sms_request(suite.sender_port, token)
    return asyncio.run(
        run_paced(make, host="127.0.0.1", port=suite.sender_port, rate=rate, seconds=seconds, connections=connections)
    )


def closed(suite: Suite, token: str, seconds: float, connections: int) -> LoadResult:
    make = sms_request(suite.sender_port, token)
    return asyncio.run(
        run_closed(make, host="127.0.0.1", port=suite.sender_port, connections=connections, seconds=seconds)
    )


def measure(plan: SoakPlan, workdir: Path, sender_workers: int, validator_workers: int) -> dict[str, Any]:
    with running_suite(
        workdir, sender_workers=sender_workers, validator_workers=validator_workers, peers=False, consumers=True
    ) as suite:
        token = create_token(suite.env, owner="bench-soak", restriction=["--monthly", "1000000000"])
        progress(f"peak through the whole suite (closed loop, {plan.connections} connections)")
        warm = closed(suite, token, plan.warmup_seconds, plan.connections)
        peak = closed(suite, token, plan.peak_seconds, plan.connections)
        # The peak's own failures are kept apart: the target is about the steady load.
        accepted, peak_failures = warm.ok + peak.ok, failures(warm) + failures(peak)
        rate = peak.rps / 2
        # The peak's backlog is drained before the soak: the soak measures its own rate only.
        done, waited = wait_consumed(suite, accepted, plan.drain_timeout)
        progress(f"peak {peak.rps:.0f} req/s; {done} of its {accepted} messages consumed {waited:.1f} s after it")

        progress(f"warm-up at the soak's rate, {rate:.0f} req/s for {plan.warmup_seconds:g} s")
        paced_connections = plan.connections * 2
        warm = paced(suite, token, rate, plan.warmup_seconds, paced_connections)
        accepted, errors = accepted + warm.ok, failures(warm)
        rss_start = rss(suite.processes)
        missing = sorted(set(suite.processes) - set(rss_start))
        if missing:
            raise RuntimeError(f"exited before the soak began: {', '.join(missing)}")

        windows: list[dict[str, Any]] = []
        results: list[LoadResult] = []
        for index in range(plan.windows):
            result = paced(suite, token, rate, plan.window_seconds, paced_connections)
            results.append(result)
            accepted, errors = accepted + result.ok, errors + failures(result)
            window: dict[str, Any] = {
                "rps": result.rps,
                "p50_ms": result.percentile_ms(50),
                "p99_ms": result.percentile_ms(99),
                "failures": failures(result),
                "rss_kib_by_process": rss(suite.processes),
                "backlog": backlog(suite.amqp_url),
            }
            window["rss_kib"] = sum(window["rss_kib_by_process"].values())
            windows.append(window)
            progress(
                f"window {index + 1}/{plan.windows}: {window['rps']:.0f} req/s, p99 {window['p99_ms']:.1f} ms, "
                f"{window['failures']} failures, backlog {window['backlog']}, "
                f"{window['rss_kib'] / 1024:.0f} MiB resident"
            )
        rss_end = rss(suite.processes)

        progress(f"waiting for the {accepted} accepted messages to be consumed")
        done, drain_s = wait_consumed(suite, accepted, plan.drain_timeout)

    per_process = growth(rss_start, rss_end)
    first, last = results[0].percentile_ms(99), results[-1].percentile_ms(99)
    figures = {
        "soak_peak_rps": peak.rps,
        "soak_rate_rps": rate,
        "soak_p99_first_minute_ms": first,
        "soak_p99_last_minute_ms": last,
        "soak_p99_last_vs_first": last / first,
        "soak_rss_growth_max": max(entry["growth"] for entry in per_process.values()),
        # A process (or worker) there at the start and gone at the end crashed or was replaced.
        "soak_processes_lost": float(len(set(rss_start) - set(rss_end))),
        "soak_errors": float(errors),
        "soak_unconsumed": float(max(0, accepted - done)),
        "soak_drain_s": drain_s,
    }
    return {
        "figures": figures,
        "accepted": accepted,
        "peak_failures": peak_failures,
        "windows": windows,
        "rss": per_process,
        "processes": sorted(rss_start),
    }


def main(*, quick: bool, output: Path, sender_workers: int, validator_workers: int, readme: bool) -> int:
    if readme:
        print(soak_readme(json.loads(output.read_text())))
        return 0
    plan = SoakPlan(quick)
    started = time.monotonic()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cartero-soak-") as tmp:
        measured = measure(plan, Path(tmp), sender_workers, validator_workers)
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": "quick" if plan.quick else "full",
        "machine": machine(),
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "versions": versions(),
        "settings": {
            "windows": plan.windows,
            "window_seconds": plan.window_seconds,
            "peak_seconds": plan.peak_seconds,
            "warmup_seconds": plan.warmup_seconds,
            "connections": plan.connections,
            "paced_connections": plan.connections * 2,
            "sender_workers": sender_workers,
            "validator_workers": validator_workers,
            "processes": measured["processes"],
            "databases": "postgresql (validator, consumer_logs, consumer_sms ledger)",
            "sms_provider": "log",
            "webhooks": "off (no consumer_webhooks)",
        },
        "figures": measured["figures"],
        "accepted": measured["accepted"],
        "peak_failures": measured["peak_failures"],
        "windows": measured["windows"],
        "rss": measured["rss"],
        "seconds": round(time.monotonic() - started, 1),
    }
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results["figures"]))
    print()
    print(rss_table(results["rss"]))
    print(
        f"\n{results['machine']['cores']} cores, {results['machine']['cpu']}; "
        f"{results['seconds']} s; written to {output}"
    )
    return 0


def rss_table(per_process: dict[str, dict[str, float]]) -> str:
    width = max([len("process"), *map(len, per_process)])
    rows = [
        f"{'process':<{width}} {'start MiB':>10} {'end MiB':>10} {'growth':>8}",
        f"{'-' * width} {'-' * 10} {'-' * 10} {'-' * 8}",
    ]
    for label, entry in per_process.items():
        start, end = entry["start_kib"] / 1024, entry["end_kib"] / 1024
        rows.append(f"{label:<{width}} {start:>10.1f} {end:>10.1f} {entry['growth']:>8.1%}")
    return "\n".join(rows)
