"""`status_p99_ms`: `GET /v1/messages/{id}` through the sender, against a message log of
`events` events (1,000,000 by default: a quarter as many messages, four events each).

The log is a SQLite file built once by bulk insert (one `executemany` per 50,000 rows, in one
transaction) and kept under `var/bench/` for the next runs: it is reused when it holds the right
count for the right owner. consumer_logs serves it as its own process; the ids asked for are
drawn at random among the bench token owner's messages.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.load import Request
from cartero_common.db import migrate
from consumer_logs.__main__ import ALEMBIC
from tests.support import ROOT, stop_process, wait_http

CACHE = ROOT / "var" / "bench"
EVENTS_PER_MESSAGE = 4
CHUNK = 50_000
INSERT = (
    "INSERT INTO events (message_id, evento, cola, stored_at, readable, payload, raw, digest)"
    " VALUES (?, ?, ?, ?, 1, ?, NULL, NULL)"
)


def message_id(index: int) -> str:
    return f"{index:032x}"


def owner_of(validator_url: str, service_key: str, token: str) -> str:
    answer = httpx.post(
        f"{validator_url}/v1/identify",
        json={"token": token},
        headers={"Authorization": f"Bearer {service_key}"},
        timeout=10,
    )
    answer.raise_for_status()
    return str(answer.json()["owner_ref"])


def event_rows(index: int, owner_ref: str, start: datetime) -> list[tuple[str, str, str, str, str]]:
    """One message's four events: enviado, two reintento, consumido."""
    ident = message_id(index)
    at = start + timedelta(milliseconds=index)
    base = {"id": ident, "telefono": "+34600111222", "fecha": "2026-12-01 10:00:00", "cola": "cola_sms"}
    events = [
        ("enviado", {**base, "evento": "enviado", "owner_ref": owner_ref, "token_prefix": "app_bnch"}),
        ("reintento", {**base, "evento": "reintento", "intento": 1, "motivo": "gateway 503", "espera_s": 5.0}),
        ("reintento", {**base, "evento": "reintento", "intento": 2, "motivo": "gateway 503", "espera_s": 30.0}),
        ("consumido", {**base, "evento": "consumido", "proveedor": "http"}),
    ]
    return [
        (ident, evento, "cola_sms", (at + timedelta(seconds=n)).isoformat(), json.dumps(payload))
        for n, (evento, payload) in enumerate(events)
    ]


def _count(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        connection.close()


def message_log(events: int, owner_ref: str, cache: Path = CACHE) -> Path:
    """A migrated message log of `events` events for `owner_ref`'s messages, from the cache when
    it is there and whole."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"status-log-{events}-{owner_ref.replace(':', '-')}.db"
    if path.exists():
        try:
            if _count(path) == events:
                return path
        except sqlite3.Error:
            pass
        path.unlink()
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    migrate(script_location=ALEMBIC, url=f"sqlite:///{partial}", version_table="alembic_version_consumer_logs")
    start = datetime(2026, 12, 1, tzinfo=UTC)
    connection = sqlite3.connect(partial)
    try:
        # A crash mid-build leaves only `.partial`: no journal and no syncs while it is built (in
        # WAL mode the whole log would pass through the WAL first). consumer_logs turns WAL back
        # on when it opens the file.
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        batch: list[tuple[str, str, str, str, str]] = []
        with connection:  # one transaction
            for index in range(events // EVENTS_PER_MESSAGE):
                batch += event_rows(index, owner_ref, start)
                if len(batch) >= CHUNK:
                    connection.executemany(INSERT, batch)
                    batch = []
            connection.executemany(INSERT, batch)
    finally:
        connection.close()
    partial.rename(path)
    partial.with_suffix(".partial.migrate-lock").unlink(missing_ok=True)
    return path


@contextmanager
def serving(database: Path | str, env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """consumer_logs over `database` (a SQLite file, or a database URL) on `port`, as its own process."""
    url = f"sqlite:///{database}" if isinstance(database, Path) else database
    settings = dict(env, DATABASE_URL=url, CONSUMER_LOGS_HOST="127.0.0.1", CONSUMER_LOGS_PORT=str(port))
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "consumer_logs"],
            env=settings,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def status_request(port: int, token: str, messages: int, seed: int = 7) -> Callable[[int], bytes]:
    """`GET /v1/messages/{id}` for a random message of the log, a new one for each request."""
    pick = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}

    def make(_: int) -> bytes:
        ident = message_id(pick.randrange(messages))
        return Request("127.0.0.1", port, "GET", f"/v1/messages/{ident}", b"", headers).encode()

    return make
