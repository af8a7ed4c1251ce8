"""`python -m bench --scale`: how the costs grow with the data.

- `validator_rps_1k_tokens` / `validator_rps_1m_tokens`: decisions per second with 1,000 and with
  1,000,000 tokens in PostgreSQL, each request for a token drawn at random among them (both
  validators run side by side; the loads alternate);
- `events_p99_ms_sqlite` / `events_p99_ms_postgresql`: `GET /v1/events?id=` of a random message,
  one request at a time, on a message log of 5,000,000 events;
- `panel_tokens_p99_ms`, `panel_usage_p99_ms`, `panel_token_usage_p99_ms`: the panel's token list
  (a random page), the month's most used tokens and one random token's usage, with 100,000 tokens
  (five uses each in the month shown), one admin at a time;
- `backlog_*`: one consumer_sms draining a backlog of 1,000,000 SMS, its resident memory sampled
  four times a second: the peak, and how far it grew after the first tenth was drained.

The data is made by bulk insert (`COPY` into PostgreSQL, `executemany` into SQLite) and kept for
the next runs: PostgreSQL databases named `cartero_bench_scale_*`, SQLite files under `var/bench/`.
A PostgreSQL database is built under a temporary name and renamed once whole, so one that exists
is complete; it is migrated to the current schema before each use. `--forget` drops them all.
The tokens are derived from their index (`bench_token`): these databases are for the benchmark
only. The backlog is filled anew each run on a vhost of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pika
import psycopg2

from bench import consumer_drain, status_log
from bench.cpu import rss_kib
from bench.load import LoadResult, Request, run_closed
from bench.report import progress
from bench.services import start_process
from cartero_common.db import migrate
from cartero_common.wire import QUEUE_LOGS, QUEUE_SMS
from consumer_logs.__main__ import ALEMBIC as LOGS_ALEMBIC
from tests.support import PG_ADMIN_DSN, free_port, isolated_vhost, stop_process, wait_http
from token_panel.routes.tokens import PER_PAGE as TOKENS_PER_PAGE

PYTHON = sys.executable
PREFIX = "cartero_bench_scale"
COPY_CHUNK = 100_000
USES_PER_TOKEN = 5
USAGE_MONTH = "2026-11"  # the month the panel's tokens were used in: a cached database stays right
RSS_EVERY_S = 0.25
ADMIN, PASSWORD = "bench", "bench-admin-password-0123"


class ScalePlan:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.token_counts = (100, 1_000) if quick else (1_000, 1_000_000)
        self.events = 4_000 if quick else 5_000_000
        self.panel_tokens = 1_000 if quick else 100_000
        self.backlog = 2_000 if quick else 1_000_000
        self.reps = 1 if quick else 3
        self.seconds = 0.5 if quick else 6.0
        self.warmup = 0.3 if quick else 3.0
        self.connections = 8 if quick else 32


def bench_token(index: int) -> str:
    """The `index`th token of the scale databases: an application token of the usual shape."""
    return "app_" + hashlib.sha256(f"cartero-bench-scale-{index}".encode()).hexdigest()[:43]


# --- cached PostgreSQL databases -------------------------------------------------------------


def _admin() -> Any:
    connection = psycopg2.connect(PG_ADMIN_DSN)
    connection.autocommit = True
    return connection


def _exists(name: str) -> bool:
    with closing(_admin()) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cursor.fetchone() is not None


def _url(name: str) -> str:
    return f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"


@contextmanager
def _transaction(name: str) -> Iterator[Any]:
    """A cursor on database `name` in one transaction, committed at the end; the connection closed."""
    with closing(_connect(name)) as connection, connection, connection.cursor() as cursor:
        yield cursor


def _connect(name: str) -> Any:
    return psycopg2.connect(PG_ADMIN_DSN, dbname=name)


def cached_database(name: str, build: Callable[[str], None]) -> str:
    """The URL of database `name`, built by `build(partial_name)` unless it is there already."""
    if not _exists(name):
        partial = f"{name}_partial"
        admin = _admin()
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{partial}" WITH (FORCE)')
                cursor.execute(f'CREATE DATABASE "{partial}"')
            build(partial)
            settle(partial)
            with admin.cursor() as cursor:
                cursor.execute(f'ALTER DATABASE "{partial}" RENAME TO "{name}"')
        finally:
            admin.close()
    return _url(name)


def settle(name: str) -> None:
    """Leave freshly bulk-loaded data as a long-running database's is: every row frozen and its
    hint bits set (else the first reads of each page write it back during the measurement), the
    statistics known, and the load's WAL checkpointed."""
    connection = _connect(name)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (FREEZE, ANALYZE)")
            cursor.execute("CHECKPOINT")
    finally:
        connection.close()


def forget() -> list[str]:
    """Drop every cached scale database; their names."""
    admin = _admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{PREFIX}%",))
            names = [row[0] for row in cursor.fetchall()]
            for name in names:
                cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        admin.close()
    return names


def _copy(cursor: Any, table: str, columns: str, rows: Iterator[str]) -> None:
    """`COPY table (columns)` from tab-separated lines, `COPY_CHUNK` at a time."""
    chunk: list[str] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= COPY_CHUNK:
            cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.StringIO("".join(chunk)))
            chunk = []
    if chunk:
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.StringIO("".join(chunk)))


def migrate_validator(database_url: str) -> None:
    env = dict(_base_env(), DATABASE_URL=database_url)
    subprocess.run([PYTHON, "-m", "token_validator", "migrate"], env=env, check=True, capture_output=True)


def build_tokens(count: int, *, uses_per_token: int = 0) -> Callable[[str], None]:
    """A validator database holding one application with `count` tokens (`bench_token(0..)`),
    each `monthly` with room to spare, and `uses_per_token` uses of each in USAGE_MONTH."""

    def build(name: str) -> None:
        migrate_validator(_url(name))
        created = "2026-10-01 00:00:00+00"
        with _transaction(name) as cursor:
            cursor.execute(
                "INSERT INTO applications (name, disabled, created_at) VALUES ('bench-scale', false, %s) RETURNING id",
                (created,),
            )
            application_id = cursor.fetchone()[0]
            start = datetime(2026, 10, 1, tzinfo=UTC)

            def tokens() -> Iterator[str]:
                for index in range(count):
                    token = bench_token(index)
                    made = (start + timedelta(seconds=index)).isoformat()
                    yield (
                        f"application\t{token[:8]}\t{hashlib.sha256(token.encode()).hexdigest()}\t{application_id}"
                        f"\temail.send,sms.send\t{made}\tmonthly\t1000000000\n"
                    )

            _copy(
                cursor,
                "tokens",
                "kind, prefix, digest, application_id, actions, created_at, restriction, quota",
                tokens(),
            )
            if uses_per_token:
                cursor.execute("SELECT min(id) FROM tokens")
                first_id = int(cursor.fetchone()[0])
                year, month = (int(part) for part in USAGE_MONTH.split("-"))

                def uses() -> Iterator[str]:
                    for index in range(count):
                        for use in range(uses_per_token):
                            day = 1 + (index + use * 7) % 28
                            spent = datetime(year, month, day, 12, tzinfo=UTC).isoformat()
                            yield (
                                f"{index:026x}{use:06x}\t{first_id + index}\t1\t{spent}"
                                f"\t{year:04d}-{month:02d}-{day:02d}\t{year * 100 + month}\t\n"
                            )

                _copy(cursor, "usages", "id, token_id, cost, spent_at, day, period, group_ids", uses())

    return build


def build_events(count: int, owner_ref: str) -> Callable[[str], None]:
    """A consumer_logs database of `count` events, the same rows as the SQLite log's."""

    def build(name: str) -> None:
        migrate(script_location=LOGS_ALEMBIC, url=_url(name), version_table="alembic_version_consumer_logs")
        start = datetime(2026, 12, 1, tzinfo=UTC)

        def rows() -> Iterator[str]:
            for index in range(count // status_log.EVENTS_PER_MESSAGE):
                for ident, evento, cola, stored_at, payload in status_log.event_rows(index, owner_ref, start):
                    escaped = payload.replace("\\", "\\\\")
                    yield f"{ident}\t{evento}\t{cola}\t{stored_at}\t1\t{escaped}\n"

        with _transaction(name) as cursor:
            _copy(cursor, "events", "message_id, evento, cola, stored_at, readable, payload", rows())

    return build


# --- processes --------------------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    return dict(os.environ, LOG_LEVEL="INFO")


def started(health_url: str, log: Path) -> None:
    """Wait for a process to answer `health_url`; if it never does, say why from its log."""
    try:
        wait_http(health_url, timeout=60)
    except AssertionError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise RuntimeError(f"{health_url} never answered; the end of {log.name}:\n{tail}") from exc


@dataclass(frozen=True)
class Validator:
    url: str
    port: int
    service_key: str
    admin_key: str


@contextmanager
def validator(database_url: str, workdir: Path, name: str, workers: int = 2) -> Iterator[Validator]:
    migrate_validator(database_url)
    port = free_port()
    service_key, admin_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    env = dict(
        _base_env(),
        DATABASE_URL=database_url,
        VALIDATOR_SERVICE_KEY=service_key,
        VALIDATOR_ADMIN_KEY=admin_key,
        TOKEN_VALIDATOR_HOST="127.0.0.1",
        TOKEN_VALIDATOR_PORT=str(port),
        TOKEN_VALIDATOR_WORKERS=str(workers),
    )
    log = workdir / f"{name}.log"
    process = start_process([PYTHON, "-m", "token_validator"], env, log)
    try:
        started(f"http://127.0.0.1:{port}/healthz", log)
        yield Validator(f"http://127.0.0.1:{port}", port, service_key, admin_key)
    finally:
        stop_process(process)


def closed(make: Callable[[int], bytes], port: int, *, connections: int, seconds: float, warmup: float) -> LoadResult:
    asyncio.run(run_closed(make, host="127.0.0.1", port=port, connections=connections, seconds=warmup))
    result = asyncio.run(run_closed(make, host="127.0.0.1", port=port, connections=connections, seconds=seconds))
    bad = {status: n for status, n in result.statuses.items() if not 200 <= status < 300}
    if bad or result.errors or not result.latencies:
        raise RuntimeError(f"port {port}: unexpected answers {bad}, {result.errors} connection errors")
    return result


def random_decisions(running: Validator, tokens: int, seed: int = 11) -> Callable[[int], bytes]:
    """`POST /v1/validate` for a token drawn at random among the first `tokens`."""
    pick = random.Random(seed)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {running.service_key}"}

    def make(_: int) -> bytes:
        body = json.dumps({"token": bench_token(pick.randrange(tokens)), "action": "sms.send"}).encode()
        return Request("127.0.0.1", running.port, "POST", "/v1/validate", body, headers).encode()

    return make


# --- the phases -------------------------------------------------------------------------------


def token_scale(plan: ScalePlan, workdir: Path, figures: dict[str, list[float]]) -> None:
    small, large = plan.token_counts
    progress(f"tokens: databases of {small:,} and {large:,} tokens (built once, then cached)")
    small_url = cached_database(f"{PREFIX}_tokens_{small}", build_tokens(small))
    large_url = cached_database(f"{PREFIX}_tokens_{large}", build_tokens(large))
    with (
        validator(small_url, workdir, "validator-small") as few,
        validator(large_url, workdir, "validator-large") as many,
    ):
        for rep in range(1, plan.reps + 1):
            for label, running, count in (("1k", few, small), ("1m", many, large)):
                progress(f"rep {rep}/{plan.reps}: validator decisions, a random token of {count:,}")
                result = closed(
                    random_decisions(running, count),
                    running.port,
                    connections=plan.connections,
                    seconds=plan.seconds,
                    warmup=plan.warmup,
                )
                figures.setdefault(f"validator_rps_{label}_tokens", []).append(result.rps)


def event_lookups(port: int, read_key: str, messages: int, seed: int = 5) -> Callable[[int], bytes]:
    """`GET /v1/events?id=` of a random message of the log."""
    pick = random.Random(seed)
    headers = {"Authorization": f"Bearer {read_key}"}

    def make(_: int) -> bytes:
        path = f"/v1/events?id={status_log.message_id(pick.randrange(messages))}"
        return Request("127.0.0.1", port, "GET", path, b"", headers).encode()

    return make


def event_scale(plan: ScalePlan, workdir: Path, figures: dict[str, list[float]]) -> None:
    owner_ref = "application:1"
    progress(f"events: message logs of {plan.events:,} events on SQLite and PostgreSQL (built once, then cached)")
    sqlite_log = status_log.message_log(plan.events, owner_ref)
    postgres_log = cached_database(f"{PREFIX}_events_{plan.events}", build_events(plan.events, owner_ref))
    messages = plan.events // status_log.EVENTS_PER_MESSAGE
    read_key = secrets.token_urlsafe(32)
    for label, database in (("sqlite", sqlite_log), ("postgresql", postgres_log)):
        port = free_port()
        # consumer_logs consumes from `logs` too: a vhost of its own keeps other events out.
        with (
            isolated_vhost("cartero-bench-scale") as amqp_url,
            status_log.serving(
                database,
                dict(_base_env(), AMQP_URL=amqp_url, CONSUMER_LOGS_READ_KEY=read_key),
                port,
                workdir / f"consumer_logs-{label}.log",
            ),
        ):
            for rep in range(1, plan.reps + 1):
                progress(f"rep {rep}/{plan.reps}: GET /v1/events?id= on {label}, one request at a time")
                result = closed(
                    event_lookups(port, read_key, messages, seed=rep),
                    port,
                    connections=1,
                    seconds=plan.seconds,
                    warmup=plan.warmup,
                )
                figures.setdefault(f"events_p99_ms_{label}", []).append(result.percentile_ms(99))


def signed_in_cookie(panel_url: str) -> str:
    """The `Cookie` header of an admin signed in to the panel."""
    with httpx.Client(base_url=panel_url, timeout=30, follow_redirects=False) as client:
        page = client.get("/signin")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        answer = client.post("/signin", data={"csrf": csrf, "username": ADMIN, "password": PASSWORD})
        if answer.status_code != 303:
            raise RuntimeError(f"panel sign-in: {answer.status_code} {answer.text[:300]}")
        return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def panel_pages(port: int, cookie: str, path: Callable[[random.Random], str], seed: int) -> Callable[[int], bytes]:
    pick = random.Random(seed)
    headers = {"Cookie": cookie}
    return lambda _: Request("127.0.0.1", port, "GET", path(pick), b"", headers).encode()


def panel_scale(plan: ScalePlan, workdir: Path, figures: dict[str, list[float]]) -> None:
    count = plan.panel_tokens
    progress(f"panel: a database of {count:,} tokens, {USES_PER_TOKEN} uses each (built once, then cached)")
    database_url = cached_database(f"{PREFIX}_panel_{count}", build_tokens(count, uses_per_token=USES_PER_TOKEN))
    with ExitStack() as stack:
        running = stack.enter_context(validator(database_url, workdir, "validator-panel"))
        created = httpx.post(
            f"{running.url}/v1/admin/admins",
            json={"username": ADMIN, "password": PASSWORD},
            headers={"Authorization": f"Bearer {running.admin_key}"},
            timeout=30,
        )
        if created.status_code not in (201, 409):
            raise RuntimeError(f"admin account: {created.status_code} {created.text[:300]}")
        port = free_port()
        env = dict(
            _base_env(),
            VALIDATOR_URL=running.url,
            VALIDATOR_ADMIN_KEY=running.admin_key,
            PANEL_SECRET_KEY=secrets.token_urlsafe(32),
            CONSUMER_LOGS_READ_KEY=secrets.token_urlsafe(32),  # required; these pages never read the log
            TOKEN_PANEL_HOST="127.0.0.1",
            TOKEN_PANEL_PORT=str(port),
        )
        log = workdir / "token_panel.log"
        panel = start_process([PYTHON, "-m", "token_panel"], env, log)
        stack.callback(stop_process, panel)
        started(f"http://127.0.0.1:{port}/healthz", log)
        cookie = signed_in_cookie(f"http://127.0.0.1:{port}")
        with _transaction(database_url.rsplit("/", 1)[1]) as cursor:
            cursor.execute("SELECT min(id), max(id) FROM tokens")
            first_id, last_id = (int(value) for value in cursor.fetchone())
        pages = max(1, -(-count // TOKENS_PER_PAGE))
        paths: dict[str, Callable[[random.Random], str]] = {
            "tokens": lambda pick: f"/tokens?page={pick.randint(1, pages)}",
            "usage": lambda _: f"/usage?month={USAGE_MONTH}",
            "token_usage": lambda pick: f"/tokens/{pick.randint(first_id, last_id)}/usage?month={USAGE_MONTH}",
        }
        for rep in range(1, plan.reps + 1):
            for name, path in paths.items():
                progress(f"rep {rep}/{plan.reps}: panel page {name}, one admin at a time")
                result = closed(
                    panel_pages(port, cookie, path, seed=rep),
                    port,
                    connections=1,
                    seconds=plan.seconds,
                    warmup=plan.warmup,
                )
                figures.setdefault(f"panel_{name}_p99_ms", []).append(result.percentile_ms(99))


def backlog(plan: ScalePlan, workdir: Path, figures: dict[str, list[float]]) -> None:
    count = plan.backlog
    with isolated_vhost("cartero-bench-backlog") as url:
        progress(f"backlog: filling cola_sms with {count:,} SMS")
        consumer_drain.fill(url, count, filled=lambda n: None if n % 200_000 else progress(f"backlog: {n:,} queued"))
        env = consumer_drain.consumer_env(url, workdir)
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        progress(f"backlog: one consumer_sms draining {count:,} SMS, its RSS sampled every {RSS_EVERY_S} s")
        process = start_process(consumer_drain.CONSUMER_SMS, env, workdir / "consumer_sms-backlog.log")
        samples: list[tuple[int, float]] = []
        started: float | None = None
        deadline = time.monotonic() + max(120.0, count / 500)
        next_report = time.monotonic() + 15
        try:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"consumer_sms exited during the backlog; see {workdir}")
                done = int(channel.queue_declare(QUEUE_LOGS, passive=True).method.message_count)
                if started is None and (done or channel.queue_declare(QUEUE_SMS, passive=True).method.consumer_count):
                    started = time.perf_counter()
                resident = rss_kib(process.pid)
                if resident is None:
                    raise RuntimeError(f"consumer_sms exited during the backlog; see {workdir}")
                samples.append((done, resident / 1024))
                if done >= count:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the backlog was not drained in time: {done:,} of {count:,}")
                if time.monotonic() > next_report:
                    progress(f"backlog: {done:,} of {count:,} drained, consumer RSS {samples[-1][1]:.0f} MiB")
                    next_report += 15
                time.sleep(RSS_EVERY_S)
            elapsed = time.perf_counter() - (started or time.perf_counter())
        finally:
            stop_process(process)
            connection.close()
    after_tenth = next(rss for done, rss in samples if done >= count // 10)
    peak = max(rss for _, rss in samples)
    figures["backlog_msgs"] = [float(count)]
    figures["backlog_drain_msgs_per_s"] = [count / elapsed if elapsed > 0 else float("nan")]
    figures["backlog_rss_after_tenth_mib"] = [after_tenth]
    figures["backlog_peak_rss_mib"] = [peak]
    figures["backlog_rss_growth"] = [peak / after_tenth - 1]


def measure(plan: ScalePlan, workdir: Path) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}
    token_scale(plan, workdir, figures)
    event_scale(plan, workdir, figures)
    panel_scale(plan, workdir, figures)
    backlog(plan, workdir, figures)
    return figures


def ratios(figures: dict[str, float]) -> dict[str, float]:
    return {"validator_1m_vs_1k_tokens": figures["validator_rps_1m_tokens"] / figures["validator_rps_1k_tokens"]}
