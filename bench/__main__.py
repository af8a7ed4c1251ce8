"""`python -m bench [--quick] [--scale [--forget] | --soak]`: measure, side by side in one run, and
write bench/results.json (bench/results-scale.json with --scale: how the costs grow with the data,
bench/scale.py; bench/results-soak.json with --soak: steady load through the whole suite,
bench/soak.py)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import broker, consumer_drain, cpu, recovery, scale, soak, status_log
from bench.load import LoadResult, Request, run_closed, run_paced
from bench.report import machine, progress, ratios, readme, table, versions
from bench.services import Suite, create_token, running_suite
from cartero_common.wire import QUEUE_LOGS, QUEUE_SMS
from tests.support import isolated_vhost

RESULTS = Path(__file__).with_name("results.json")
SCALE_RESULTS = Path(__file__).with_name("results-scale.json")


class Plan:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.reps = 1 if quick else 3
        self.seconds = 0.5 if quick else 4.0
        self.warmup = 0.3 if quick else 2.0
        self.connections = 8 if quick else 32
        self.drain_messages = 300 if quick else 10_000
        self.get_loop_messages = 200 if quick else 3_000
        self.race_requests, self.race_limit = (40, 10) if quick else (200, 50)
        self.status_events = 4_000 if quick else 1_000_000
        self.status_connections = 2 if quick else 4
        self.batch_size = 100 if quick else 1000
        self.batch_connections = 2 if quick else 4


def sms_request(port: int, token: str | None) -> Callable[[int], bytes]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"mensaje": "Hola desde el banco de pruebas", "telefono": "+34600111222"}).encode()
    payload = Request("127.0.0.1", port, "POST", "/v1/sms", body, headers).encode()
    return lambda _: payload


def batch_request(port: int, token: str, size: int) -> Callable[[int], bytes]:
    """`POST /v1/sms/batch` with `size` SMS."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    sms = {"mensaje": "Hola desde el banco de pruebas", "telefono": "+34600111222"}
    body = json.dumps({"messages": [sms] * size}).encode()
    payload = Request("127.0.0.1", port, "POST", "/v1/sms/batch", body, headers).encode()
    return lambda _: payload


def validate_request(port: int, service_key: str, token: str) -> Callable[[int], bytes]:
    body = json.dumps({"token": token, "action": "sms.send"}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {service_key}"}
    payload = Request("127.0.0.1", port, "POST", "/v1/validate", body, headers).encode()
    return lambda _: payload


def closed(
    make: Callable[[int], bytes],
    port: int,
    plan: Plan,
    connections: int | None = None,
    meter: cpu.CpuMeter | None = None,
) -> LoadResult:
    """A warm-up, then the measured run (over which `meter`, if any, counts CPU time)."""
    conns = connections or plan.connections
    asyncio.run(run_closed(make, host="127.0.0.1", port=port, connections=conns, seconds=plan.warmup))
    if meter:
        meter.start()
    result = asyncio.run(run_closed(make, host="127.0.0.1", port=port, connections=conns, seconds=plan.seconds))
    if meter:
        meter.stop()
    return result


def sender_meter(suite: Suite) -> cpu.CpuMeter:
    return cpu.CpuMeter(
        {
            "sender": cpu.tree(suite.processes["sender"].pid),
            "validator": cpu.tree(suite.processes["token_validator"].pid),
            "postgresql": cpu.named("postgres"),
            "rabbitmq": cpu.named("beam.smp"),
            "load": cpu.single(os.getpid()),
        }
    )


def bare_meter(suite: Suite) -> cpu.CpuMeter:
    return cpu.CpuMeter(
        {
            "bare": cpu.tree(suite.processes["bare_publish"].pid),
            "rabbitmq": cpu.named("beam.smp"),
            "load": cpu.single(os.getpid()),
        }
    )


def record_cpu(record: Callable[[str, float], None], prefix: str, meter: cpu.CpuMeter, units: float) -> None:
    for part, ms in meter.ms_per(units).items():
        record(f"{prefix}_cpu_ms_{part}", ms)


def check_ok(name: str, result: LoadResult) -> None:
    bad = {status: n for status, n in result.statuses.items() if not 200 <= status < 300}
    if bad or result.errors:
        raise RuntimeError(f"{name}: unexpected answers {bad}, {result.errors} connection errors")


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def measure(plan: Plan, workdir: Path, sender_workers: int, validator_workers: int) -> dict[str, Any]:
    figures: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    with running_suite(workdir, sender_workers=sender_workers, validator_workers=validator_workers) as suite:
        token = create_token(suite.env, owner="bench", restriction=["--monthly", "1000000000"])
        validator_port = int(suite.validator_url.rsplit(":", 1)[1])
        for rep in range(1, plan.reps + 1):
            progress(f"rep {rep}/{plan.reps}: broker limit (confirmed persistent publisher, no HTTP)")
            record(
                "broker_limit_msgs",
                asyncio.run(broker.confirmed_publish_rate(suite.amqp_url, queue=QUEUE_SMS, seconds=plan.seconds)),
            )
            broker.purge(suite.amqp_url, QUEUE_SMS, QUEUE_LOGS)

            progress(f"rep {rep}/{plan.reps}: sender end to end at peak ({plan.connections} connections)")
            meter = sender_meter(suite)
            peak = closed(sms_request(suite.sender_port, token), suite.sender_port, plan, meter=meter)
            check_ok("sender", peak)
            record_cpu(record, "sender", meter, len(peak.latencies))
            record("sender_rps", peak.rps)
            record("sender_p50_ms", peak.percentile_ms(50))
            record("sender_p99_ms", peak.percentile_ms(99))
            broker.purge(suite.amqp_url, QUEUE_SMS, QUEUE_LOGS)

            rate = peak.rps / 2
            progress(f"rep {rep}/{plan.reps}: sender at half load ({rate:.0f} req/s, open loop)")
            half = asyncio.run(
                run_paced(
                    sms_request(suite.sender_port, token),
                    host="127.0.0.1",
                    port=suite.sender_port,
                    rate=rate,
                    seconds=plan.seconds,
                    connections=plan.connections * 2,
                )
            )
            check_ok("sender at half load", half)
            record("sender_p99_ms_at_half_load", half.percentile_ms(99))
            broker.purge(suite.amqp_url, QUEUE_SMS, QUEUE_LOGS)

            progress(f"rep {rep}/{plan.reps}: batches of {plan.batch_size} SMS on {plan.batch_connections} connections")
            meter = sender_meter(suite)
            batches = closed(
                batch_request(suite.sender_port, token, plan.batch_size),
                suite.sender_port,
                plan,
                connections=plan.batch_connections,
                meter=meter,
            )
            check_ok("batch sender", batches)
            record_cpu(record, "batch", meter, len(batches.latencies) * plan.batch_size)  # per SMS
            record("batch_msgs_per_s", batches.rps * plan.batch_size)
            broker.purge(suite.amqp_url, QUEUE_SMS, QUEUE_LOGS)

            progress(f"rep {rep}/{plan.reps}: bare FastAPI + aio-pika publisher (one confirmed message, no checks)")
            meter = bare_meter(suite)
            bare = closed(sms_request(suite.bare_port, None), suite.bare_port, plan, meter=meter)
            check_ok("bare publisher", bare)
            record_cpu(record, "bare", meter, len(bare.latencies))
            record("bare_publish_rps", bare.rps)
            broker.purge(suite.amqp_url, QUEUE_SMS, QUEUE_LOGS)

            progress(f"rep {rep}/{plan.reps}: seed-style sender (a connection per request)")
            seed = closed(sms_request(suite.seed_port, None), suite.seed_port, plan)
            check_ok("seed-style sender", seed)
            record("seed_style_rps", seed.rps)
            record("seed_style_p99_ms", seed.percentile_ms(99))
            broker.purge(suite.amqp_url, QUEUE_SMS, QUEUE_LOGS)

            progress(f"rep {rep}/{plan.reps}: validator decisions")
            decisions = closed(validate_request(validator_port, suite.service_key, token), validator_port, plan)
            check_ok("validator", decisions)
            record("validator_rps", decisions.rps)
            record("validator_p99_ms", decisions.percentile_ms(99))

            progress(
                f"rep {rep}/{plan.reps}: validator race ({plan.race_requests} at once, max_uses {plan.race_limit})"
            )
            record("overspend", race(suite, validator_port, plan))

            progress(f"rep {rep}/{plan.reps}: consumer drain, {plan.drain_messages} messages")
            record("consumer_drain_msgs", consumer_drain.consumer_rate(suite.amqp_url, plan.drain_messages, workdir))
            progress(f"rep {rep}/{plan.reps}: basic_get loop, {plan.get_loop_messages} messages")
            record("seed_get_loop_msgs", consumer_drain.get_loop_rate(suite.amqp_url, plan.get_loop_messages, workdir))
            broker.purge(suite.amqp_url, QUEUE_SMS, QUEUE_LOGS)

            progress(f"rep {rep}/{plan.reps}: message status, {plan.status_events:,} events in the log")
            alone, loaded = status_p99(suite, token, plan, workdir)
            record("status_p99_ms", alone)
            record("status_p99_ms_loaded", loaded)

        # Once, not per repetition: a broker node of its own is started for it (`bench.recovery`).
        progress("recovery: a private broker node stopped and started under a request every 10 ms")
        sender_back, consumer_back = recovery.measure(suite.env, token, workdir)
        record("sender_recovery_s", sender_back)
        record("consumer_recovery_s", consumer_back)
    return {"figures": {name: median(values) for name, values in figures.items()}, "repetitions": figures}


def status_p99(suite: Suite, token: str, plan: Plan, workdir: Path) -> tuple[float, float]:
    """p99 of `GET /v1/messages/{id}` (random ids of the token's owner) through the sender, the
    validator's identify and consumer_logs over a log of `plan.status_events` events: one request
    at a time (what a lookup costs with that much in the log), then on `plan.status_connections`
    connections as fast as they go (the same lookups queueing for the machine's cores)."""
    owner_ref = status_log.owner_of(suite.validator_url, suite.service_key, token)
    path = status_log.message_log(plan.status_events, owner_ref)
    messages = plan.status_events // status_log.EVENTS_PER_MESSAGE
    # A vhost of its own: the other phases' events must not land in the cached log.
    with (
        isolated_vhost("cartero-bench-log") as amqp_url,
        status_log.serving(path, dict(suite.env, AMQP_URL=amqp_url), suite.logs_port, workdir / "consumer_logs.log"),
    ):
        make = status_log.status_request(suite.sender_port, token, messages)
        alone = closed(make, suite.sender_port, plan, connections=1)
        loaded = closed(make, suite.sender_port, plan, connections=plan.status_connections)
    check_ok("message status", alone)
    check_ok("message status under load", loaded)
    return alone.percentile_ms(99), loaded.percentile_ms(99)


def race(suite: Suite, validator_port: int, plan: Plan) -> float:
    token = create_token(suite.env, owner="bench-race", restriction=["--max-uses", str(plan.race_limit)])

    async def fire() -> int:
        limits = httpx.Limits(max_connections=plan.race_requests)
        async with httpx.AsyncClient(base_url=suite.validator_url, limits=limits, timeout=30) as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/v1/validate",
                        json={"token": token, "action": "sms.send"},
                        headers={"Authorization": f"Bearer {suite.service_key}"},
                    )
                    for _ in range(plan.race_requests)
                )
            )
        return sum(1 for answer in answers if answer.json()["allowed"])

    allowed = asyncio.run(fire())
    return float(allowed - plan.race_limit)


@dataclass(frozen=True)
class Run:
    mode: str
    started: float  # time.monotonic()
    load_before: tuple[float, float, float]


def write_results(
    output: Path, run: Run, settings: dict[str, Any], figures: dict[str, float], repetitions: dict[str, list[float]]
) -> None:
    """Write a run's results to `output` and print its table with the targets."""
    box, seconds = machine(), round(time.monotonic() - run.started, 1)
    results = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "mode": run.mode,
        "machine": box,
        "load_average": {"before": list(run.load_before), "after": list(os.getloadavg())},
        "versions": versions(),
        "settings": settings,
        "figures": figures,
        "repetitions": repetitions,
        "seconds": seconds,
    }
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(figures))
    print(f"\n{box['cores']} cores, {box['cpu']}; {seconds} s; written to {output}")


def run_scale(plan: scale.ScalePlan, output: Path, *, forget: bool) -> int:
    run = Run("scale quick" if plan.quick else "scale", time.monotonic(), os.getloadavg())
    if forget:
        progress(f"dropped the cached scale databases: {', '.join(scale.forget()) or 'none'}")
    with tempfile.TemporaryDirectory(prefix="cartero-bench-scale-") as tmp:
        repetitions = scale.measure(plan, Path(tmp))
    figures = {name: median(values) for name, values in repetitions.items()}
    figures.update(scale.ratios(figures))
    small, large = plan.token_counts
    settings = {
        "tokens": f"{small:,} and {large:,} (PostgreSQL, validator 2 workers, {plan.connections} connections)",
        "events": f"{plan.events:,} (SQLite and PostgreSQL, one request at a time)",
        "panel_tokens": f"{plan.panel_tokens:,} ({scale.USES_PER_TOKEN} uses each in {scale.USAGE_MONTH})",
        "backlog": f"{plan.backlog:,} SMS, one consumer_sms",
        "phases": f"{plan.seconds} s after {plan.warmup} s warm-up, median of {plan.reps} repetitions",
    }
    write_results(output, run, settings, figures, repetitions)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="seconds, tiny counts: checks the harness works")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="how the costs grow with the data: tokens, events, panel, backlog (bench.scale; up to 30 min"
        " the first time, while it builds its cached databases)",
    )
    parser.add_argument("--forget", action="store_true", help="with --scale: drop the cached scale databases first")
    parser.add_argument("--output", type=Path, help="where the results go (bench/results.json, or -scale.json)")
    parser.add_argument("--sender-workers", type=int, default=2)
    parser.add_argument("--validator-workers", type=int, default=2)
    parser.add_argument(
        "--readme", action="store_true", help="print docs/performance.md's Performance table from --output"
    )
    parser.add_argument("--soak", action="store_true", help="10 minutes at half the peak (bench/results-soak.json)")
    args = parser.parse_args()
    if args.soak:
        return soak.main(
            quick=args.quick,
            output=args.output or soak.RESULTS,
            sender_workers=args.sender_workers,
            validator_workers=args.validator_workers,
            readme=args.readme,
        )
    if args.output is None:
        args.output = SCALE_RESULTS if args.scale else RESULTS
    if args.readme:
        print(readme(json.loads(args.output.read_text())))
        return 0
    if args.scale:
        return run_scale(scale.ScalePlan(args.quick), args.output, forget=args.forget)
    plan = Plan(args.quick)
    run = Run("quick" if plan.quick else "full", time.monotonic(), os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="cartero-bench-") as tmp:
        measured = measure(plan, Path(tmp), args.sender_workers, args.validator_workers)
    figures = measured["figures"]
    figures.update(ratios(figures))
    settings = {
        "repetitions": plan.reps,
        "phase_seconds": plan.seconds,
        "warmup_seconds": plan.warmup,
        "connections": plan.connections,
        "sender_workers": args.sender_workers,
        "validator_workers": args.validator_workers,
        "drain_messages": plan.drain_messages,
        "get_loop_messages": plan.get_loop_messages,
        "race": [plan.race_requests, plan.race_limit],
        "status_events": plan.status_events,
        "status_connections": plan.status_connections,
        "batch": [plan.batch_size, plan.batch_connections],
        "validator_database": "postgresql",
        "figure": "median of repetitions",
    }
    write_results(args.output, run, settings, figures, measured["repetitions"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
