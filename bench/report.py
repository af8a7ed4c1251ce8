"""What a run reports: its machine and versions, the ratios, the verdicts, the tables."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg2

from tests.support import PG_ADMIN_DSN

TARGETS = {
    "sender_vs_seed": (">=", 10.0),
    "sender_vs_broker_limit": (">=", 0.30),
    "sender_vs_bare_publish": (">=", 0.6),
    "sender_vs_request_ceiling": (">=", 0.5),
    "sender_recovery_s": ("<=", 1.0),
    "batch_vs_broker_limit": (">=", 0.8),
    "consumer_recovery_s": ("<=", 1.0),
    "sender_p99_ms_at_half_load": ("<=", 50.0),
    "validator_rps": (">=", 2000.0),
    "overspend": ("==", 0.0),
    "drain_vs_get_loop": (">=", 5.0),
    "status_p99_ms": ("<=", 20.0),
    # `python -m bench --scale` (bench/scale.py)
    "validator_1m_vs_1k_tokens": (">=", 0.9),
    "events_p99_ms_sqlite": ("<=", 20.0),
    "events_p99_ms_postgresql": ("<=", 20.0),
    "panel_tokens_p99_ms": ("<=", 200.0),
    "panel_usage_p99_ms": ("<=", 200.0),
    "panel_token_usage_p99_ms": ("<=", 200.0),
    "backlog_rss_growth": ("<=", 0.10),
    # `python -m bench --soak` (bench/soak.py)
    "soak_p99_last_vs_first": ("<=", 1.5),
    "soak_rss_growth_max": ("<=", 0.10),
    "soak_processes_lost": ("==", 0.0),
    "soak_errors": ("==", 0.0),
    "soak_unconsumed": ("==", 0.0),
}


def progress(text: str, *, mode: str = "") -> None:
    """A progress line on stderr: `[bench <mode> HH:MM:SS] text`."""
    print(f"[bench {mode + ' ' if mode else ''}{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        found["rabbitmq"] = httpx.get("http://127.0.0.1:15672/api/overview", auth=("guest", "guest"), timeout=5).json()[
            "rabbitmq_version"
        ]
    except Exception:  # noqa: BLE001 - informative only
        found["rabbitmq"] = "unknown"
    try:
        with psycopg2.connect(PG_ADMIN_DSN) as connection, connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            found["postgresql"] = f"PostgreSQL {cursor.fetchone()[0]}"
    except psycopg2.Error:
        found["postgresql"] = "unknown"
    return found


def ratios(figures: dict[str, float]) -> dict[str, float]:
    return {
        "sender_vs_seed": figures["sender_rps"] / figures["seed_style_rps"],
        "sender_vs_broker_limit": figures["sender_rps"] / figures["broker_limit_msgs"],
        # Each request is two confirmed persistent messages (the message and its event): the
        # most requests the broker could take is half its message limit.
        "sender_vs_request_ceiling": figures["sender_rps"] / (figures["broker_limit_msgs"] / 2),
        "sender_vs_bare_publish": figures["sender_rps"] / figures["bare_publish_rps"],
        # Each batched SMS is two confirmed persistent messages too: the broker messages the
        # batches made per second, against what the broker takes.
        "batch_vs_broker_limit": 2 * figures["batch_msgs_per_s"] / figures["broker_limit_msgs"],
        "drain_vs_get_loop": figures["consumer_drain_msgs"] / figures["seed_get_loop_msgs"],
    }


def verdict(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    op, target = TARGETS[name]
    met = {">=": value >= target, "<=": value <= target, "==": value == target}[op]
    return f"{'met' if met else 'MISSED'} (target {op} {target:g})"


def table(figures: dict[str, float]) -> str:
    rows = [f"{'figure':<28} {'value':>12}  target", f"{'-' * 28} {'-' * 12}  {'-' * 24}"]
    for name, value in figures.items():
        rows.append(f"{name:<28} {value:>12.2f}  {verdict(name, value)}")
    return "\n".join(rows)


UNITS = {
    "sender_rps": "req/s",
    "seed_style_rps": "req/s",
    "bare_publish_rps": "req/s",
    "batch_msgs_per_s": "msg/s",
    "validator_rps": "decisions/s",
    "broker_limit_msgs": "msg/s",
    "consumer_drain_msgs": "msg/s",
    "seed_get_loop_msgs": "msg/s",
    "overspend": "uses",
    "sender_recovery_s": "s",
    "consumer_recovery_s": "s",
    "validator_rps_1k_tokens": "decisions/s",
    "validator_rps_1m_tokens": "decisions/s",
    "backlog_msgs": "messages",
    "backlog_drain_msgs_per_s": "msg/s",
    "backlog_rss_after_tenth_mib": "MiB",
    "backlog_peak_rss_mib": "MiB",
    "backlog_rss_growth": "fraction",
    "soak_peak_rps": "req/s",
    "soak_rate_rps": "req/s",
    "soak_rss_growth_max": "fraction",
    "soak_processes_lost": "processes",
    "soak_errors": "requests",
    "soak_unconsumed": "messages",
    "soak_drain_s": "s",
}


def _run_line(results: dict[str, Any]) -> str:
    box, load = results["machine"], results["load_average"]
    return (
        f"Run `{results['when']}` ({results['mode']}, {results['seconds']} s): {box['cores']} cores, {box['cpu']}, "
        f"{box['memory_gib']} GiB, {box['os']}, Python {box['python']}; RabbitMQ {results['versions']['rabbitmq']}, "
        f"{results['versions']['postgresql']}. Load average (1/5/15 min) "
        f"{' / '.join(f'{v:.2f}' for v in load['before'])} before, "
        f"{' / '.join(f'{v:.2f}' for v in load['after'])} after."
    )


def _figure_rows(figures: dict[str, float]) -> list[str]:
    lines = ["| figure | value | unit | target |", "|---|---:|---|---|"]
    for name, value in figures.items():
        unit = UNITS.get(name, "ms" if name.endswith("_ms") or "_ms_" in name else "×")
        lines.append(f"| `{name}` | {value:,.2f} | {unit} | {verdict(name, value)} |")
    return lines


def soak_readme(results: dict[str, Any]) -> str:
    """The Soak tables of docs/performance.md, from a results-soak.json as `--soak` wrote it."""
    settings = results["settings"]
    lines = [
        f"{_run_line(results)} Sender {settings['sender_workers']} uvicorn workers, validator "
        f"{settings['validator_workers']}; peak on {settings['connections']} connections, then "
        f"{settings['windows']} windows of {settings['window_seconds']:g} s at half of it on "
        f"{settings['paced_connections']}; {results['accepted']:,} messages accepted.",
        "",
        *_figure_rows(results["figures"]),
        "",
        "| process | RSS at the start | at the end | growth |",
        "|---|---:|---:|---:|",
    ]
    for label, entry in results["rss"].items():
        lines.append(
            f"| `{label}` | {entry['start_kib'] / 1024:,.1f} MiB | {entry['end_kib'] / 1024:,.1f} MiB "
            f"| {entry['growth']:+.1%} |"
        )
    lines += ["", "| window | req/s | p50 ms | p99 ms | failures | backlog `cola_sms` / `logs` | RSS, all |"]
    lines.append("|---:|---:|---:|---:|---:|---:|---:|")
    for number, window in enumerate(results["windows"], start=1):
        queues = window["backlog"]
        lines.append(
            f"| {number} | {window['rps']:,.0f} | {window['p50_ms']:.1f} | {window['p99_ms']:.1f} "
            f"| {window['failures']} | {queues['cola_sms']} / {queues['logs']} | {window['rss_kib'] / 1024:,.0f} MiB |"
        )
    return "\n".join(lines)


def readme(results: dict[str, Any]) -> str:
    """The Performance table of docs/performance.md, from a results.json as the harness wrote it."""
    settings = results["settings"]
    if "sender_workers" in settings:
        how = (
            f"Sender {settings['sender_workers']} uvicorn workers, validator {settings['validator_workers']}; "
            f"{settings['connections']} keep-alive connections; {settings['phase_seconds']} s phases after "
            f"{settings['warmup_seconds']} s warm-up; median of {settings['repetitions']} repetitions."
        )
    else:  # `--scale`: its settings are sentences already
        how = "; ".join(f"{name.replace('_', ' ')} {value}" for name, value in settings.items()) + "."
    lines = [
        f"{_run_line(results)} {how}",
        "",
        *_figure_rows(results["figures"]),
    ]
    return "\n".join(lines)
