"""Three validators and three senders in front of them, on one PostgreSQL and the real broker.

Sender i asks validator i (machine i); requests go round-robin over the senders. Two things must
hold across every process: a token never spends more than its quota (a 1,000-request race on a
100-use token), and a monthly token is counted per month of the validators' zone, whatever
instant the month changes at (the clocks are moved across a month's end, in step, and with one
machine lagging).

The clocks are moved with libfaketime (Debian's `faketime`, `local/install-test-deps.sh`): each
process is started with it preloaded, reading its machine's offset from a file that the test
rewrites, so the services run their production code and clock (`system_clock`). The month
windows are computed in Python from that clock (`token_validator.moment`) and bound into the
statements as parameters: PostgreSQL's own clock (`now()`) decides nothing, so the database
needs no faking. Bookworm's libfaketime 0.9.10 breaks `time.sleep` when the monotonic clock is
left alone (EINVAL; wolfcw/libfaketime#426): the validator and the sender never sleep on a
thread, and would fail loudly here if they did.
"""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import httpx
import orjson
import pytest
from sqlalchemy import func, select

from cartero_common.clock import FixedClock
from tests.support import (
    ROOT,
    drain,
    free_port,
    isolated_database,
    isolated_vhost,
    python_env,
    rabbit_api,
    stop_process,
    unavailable,
    wait_http,
    wait_until,
)
from tests.token_validator.support import ADMIN_KEY, SERVICE_KEY, Tokens, migrated
from token_validator.db import Database
from token_validator.models import Token, Usage

REPLICAS = 3
CONCURRENCY = 50  # requests in flight at once, over the three senders
ZONE = "Europe/Madrid"
MADRID = ZoneInfo(ZONE)
PROBLEM_JSON = "application/problem+json"


def _libfaketime() -> str | None:
    """The multithreaded build (the services run blocking work in threads)."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    return found[0] if found else None


class MachineClock:
    """The clock of the processes started with `env()` (one "machine"): real time plus an
    offset read from one file on every reading (FAKETIME_NO_CACHE), so rewriting the file moves
    them at once. Monotonic clocks are left alone: timeouts and heartbeats keep working while
    the wall clock jumps."""

    def __init__(self, path: Path, library: str) -> None:
        self.path = path
        self.library = library
        self.offset = 0.0
        self.set_offset(0.0)

    def env(self) -> dict[str, str]:
        return {
            "LD_PRELOAD": self.library,
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            # Its "monotonic fix" looks up the clock of every condition variable a timed wait
            # uses: each hand-over between the event loop and a worker thread (and of the GIL)
            # took several times longer, and the race saw 2 s validator timeouts. With the
            # monotonic clock not faked there is nothing for it to fix; timed waits keep their
            # length without it.
            "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        }

    def set_offset(self, seconds: float) -> None:
        # Written aside and renamed: a process reading the file never sees half a line.
        scratch = self.path.with_suffix(".new")
        scratch.write_text(f"{seconds:+.3f}\n")
        os.replace(scratch, self.path)
        self.offset = seconds

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def set(self, instant: datetime) -> None:
        """The clock reads `instant` now (and runs on from it)."""
        self.set_offset((instant - datetime.now(UTC)).total_seconds())


@dataclass
class Deployment:
    """Machine i runs validator i and sender i, with clock i."""

    senders: list[str]
    validators: list[str]
    amqp_url: str
    db: Database
    clocks: list[MachineClock]

    def set_clocks(self, instant: datetime, *, behind: dict[int, timedelta] | None = None) -> None:
        """Every machine's clock to `instant`, but those in `behind` that much earlier."""
        for index, clock in enumerate(self.clocks):
            clock.set(instant - (behind or {}).get(index, timedelta()))

    def real_clocks(self) -> None:
        for clock in self.clocks:
            clock.set_offset(0.0)


def _start(module: str, env: dict[str, str], log: Path, stack: ExitStack) -> None:
    output = stack.enter_context(log.open("wb"))
    process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=output, stderr=output)
    stack.callback(stop_process, process)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    library = _libfaketime()
    if library is None:
        unavailable("libfaketime (Debian package faketime; make system-test-deps)")
    assert library is not None
    logs = tmp_path_factory.mktemp("scale-out")
    clocks = [MachineClock(logs / f"clock-{index}", library) for index in range(REPLICAS)]
    with (
        isolated_database("cartero_scale") as database_url,
        isolated_vhost("cartero-scale") as amqp_url,
        ExitStack() as stack,
    ):
        db = migrated(database_url)
        stack.callback(db.dispose)
        common = {"TIMEZONE": ZONE, "LOG_LEVEL": "WARNING"}
        validators, senders = [], []
        for index in range(REPLICAS):
            port = free_port()
            env = python_env(
                DATABASE_URL=database_url,
                VALIDATOR_SERVICE_KEY=SERVICE_KEY,
                VALIDATOR_ADMIN_KEY=ADMIN_KEY,
                TOKEN_VALIDATOR_PORT=str(port),
                RECONCILE_AFTER_SECONDS="0",  # nothing here is left unconfirmed; no message log to ask
                **common,
                **clocks[index].env(),
            )
            _start("token_validator", env, logs / f"validator-{index}.log", stack)
            validators.append(f"http://127.0.0.1:{port}")
        for index in range(REPLICAS):
            port = free_port()
            env = python_env(
                AMQP_URL=amqp_url,
                SENDER_PORT=str(port),
                VALIDATOR_URL=validators[index],
                VALIDATOR_SERVICE_KEY=SERVICE_KEY,
                **common,
                **clocks[index].env(),
            )
            _start("sender", env, logs / f"sender-{index}.log", stack)
            senders.append(f"http://127.0.0.1:{port}")
        for url in validators:
            wait_http(f"{url}/healthz", timeout=60)
        for url in senders:
            # Ready: its broker connection is up and its own validator answers.
            wait_until(partial(_ready, url), timeout=60, what=f"{url}/readyz")
        yield Deployment(senders, validators, amqp_url, db, clocks)


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/readyz", timeout=2).status_code == 200


@dataclass(frozen=True)
class Answer:
    index: int
    status: int
    content_type: str
    body: dict[str, Any]
    headers: dict[str, str]


async def _post_all(senders: list[str], token: str, count: int, tag: str) -> list[Answer]:
    """`count` SMS requests, request i to sender i mod 3, CONCURRENCY of them in flight."""
    answers: list[Answer] = []
    indexes = iter(range(count))
    auth = {"Authorization": f"Bearer {token}"}
    async with AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(
                aiohttp.ClientSession(
                    base_url=url,
                    connector=aiohttp.TCPConnector(limit=CONCURRENCY),
                    timeout=aiohttp.ClientTimeout(total=30),
                )
            )
            for url in senders
        ]

        async def worker() -> None:
            for index in indexes:  # one iterator shared by every worker: each index once
                body = {"mensaje": f"{tag} {index}", "telefono": "+34600111222"}
                async with sessions[index % len(sessions)].post("/v1/sms", json=body, headers=auth) as response:
                    answers.append(
                        Answer(
                            index,
                            response.status,
                            response.content_type,
                            orjson.loads(await response.read()),
                            dict(response.headers),
                        )
                    )

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return sorted(answers, key=lambda answer: answer.index)


def post_all(senders: list[str], token: str, count: int, tag: str) -> tuple[list[Answer], float]:
    started = time.monotonic()
    answers = asyncio.run(_post_all(senders, token, count, tag))
    return answers, time.monotonic() - started


def drain_vhost(amqp_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every message in every queue of the test's vhost, removed; by queue."""
    vhost = unquote(urlsplit(amqp_url).path.lstrip("/"))
    queues = rabbit_api("GET", f"/queues/{quote(vhost, safe='')}").raise_for_status().json()
    return {queue["name"]: [orjson.loads(body) for _, body in drain(amqp_url, queue["name"])] for queue in queues}


def usages_by_period(db: Database, token_id: int) -> dict[int, int]:
    query = select(Usage.period, func.count()).where(Usage.token_id == token_id).group_by(Usage.period)
    with db.engine.connect() as connection:
        return {int(period): int(count) for period, count in connection.execute(query)}


def accepted_ids(answers: list[Answer]) -> set[str]:
    return {answer.body["id"] for answer in answers if answer.status == 202}


def assert_in_broker(amqp_url: str, ids: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Exactly the accepted messages on `cola_sms`, their `enviado` events on `logs`, nothing else."""
    queued = drain_vhost(amqp_url)
    messages, events = queued.pop("cola_sms", []), queued.pop("logs", [])
    assert len(messages) == len(ids) and {m["id"] for m in messages} == ids
    assert len(events) == len(ids) and {e["id"] for e in events} == ids
    assert {e["evento"] for e in events} == {"enviado"}
    assert {name: len(rest) for name, rest in queued.items() if rest} == {}
    return {"cola_sms": messages, "logs": events}


RACE_REQUESTS = 1_000
RACE_USES = 100


def test_a_100_use_token_accepts_exactly_100_of_1000_across_three_senders_and_validators(
    deployment: Deployment,
) -> None:
    deployment.real_clocks()
    drain_vhost(deployment.amqp_url)
    token, token_id = Tokens(deployment.db).make("application", "scale-race", restriction="max_uses", limit=RACE_USES)

    answers, seconds = post_all(deployment.senders, token, RACE_REQUESTS, "race")
    print(
        f"\n[scale-out] race: {RACE_REQUESTS} requests over {REPLICAS} senders and {REPLICAS} validators,"
        f" {CONCURRENCY} in flight: {seconds:.2f} s, {RACE_REQUESTS / seconds:.0f} requests/s"
    )

    assert Counter(answer.status for answer in answers) == {202: RACE_USES, 403: RACE_REQUESTS - RACE_USES}
    refused = [answer for answer in answers if answer.status == 403]
    assert {(a.content_type, a.body["code"], a.body["status"]) for a in refused} == {
        (PROBLEM_JSON, "usage_exhausted", 403)
    }
    accepted = [answer for answer in answers if answer.status == 202]
    # Every sender, and so every validator, took part in spending the 100.
    assert {answer.index % REPLICAS for answer in accepted} == set(range(REPLICAS))
    assert Tokens(deployment.db).used(token_id) == RACE_USES
    assert sum(usages_by_period(deployment.db, token_id).values()) == RACE_USES
    assert_in_broker(deployment.amqp_url, accepted_ids(answers))


MONTHLY_LIMIT = 50
PER_MONTH_REQUESTS = 200
# A minute before the end of January in Madrid, and a few seconds into February. Both instants
# are still January in UTC (Madrid is UTC+1 in winter), so only the validators' zone can tell
# that the month changed in between.
LAST_MINUTE_OF_JANUARY = datetime(2026, 1, 31, 23, 59, 0, tzinfo=MADRID)
FIRST_SECONDS_OF_FEBRUARY = datetime(2026, 2, 1, 0, 0, 5, tzinfo=MADRID)
MIDNIGHT = datetime(2026, 2, 1, tzinfo=MADRID)


def test_a_monthly_token_accepts_exactly_its_limit_in_each_month_when_the_clock_crosses_the_boundary(
    deployment: Deployment,
) -> None:
    assert LAST_MINUTE_OF_JANUARY.astimezone(UTC).month == FIRST_SECONDS_OF_FEBRUARY.astimezone(UTC).month == 1
    drain_vhost(deployment.amqp_url)
    tokens = Tokens(deployment.db, FixedClock(LAST_MINUTE_OF_JANUARY), zone=ZONE)
    token, token_id = tokens.make("application", "scale-monthly", restriction="monthly", limit=MONTHLY_LIMIT)

    deployment.set_clocks(LAST_MINUTE_OF_JANUARY)
    january, january_seconds = post_all(deployment.senders, token, PER_MONTH_REQUESTS, "january")
    # Guards the test itself: had the requests run past midnight, January's count would prove nothing.
    assert deployment.clocks[0].now() < MIDNIGHT, "the January requests ran into February"
    deployment.set_clocks(FIRST_SECONDS_OF_FEBRUARY)
    february, february_seconds = post_all(deployment.senders, token, PER_MONTH_REQUESTS, "february")
    print(
        f"\n[scale-out] monthly: {PER_MONTH_REQUESTS} requests before and {PER_MONTH_REQUESTS} after Madrid's"
        f" midnight: {january_seconds:.2f} s and {february_seconds:.2f} s"
    )

    for answers, renews_in in ((january, (1, 60)), (february, (28 * 86400 - 120, 28 * 86400))):
        assert Counter(answer.status for answer in answers) == {
            202: MONTHLY_LIMIT,
            429: PER_MONTH_REQUESTS - MONTHLY_LIMIT,
        }
        refused = [answer for answer in answers if answer.status == 429]
        assert {(a.content_type, a.body["code"]) for a in refused} == {(PROBLEM_JSON, "monthly_quota_exhausted")}
        # Retry-After: until the next month starts in Madrid (seconds away in January, not an hour
        # and a minute as UTC's midnight would be; 28 days in February).
        retry_after = {int(a.headers["Retry-After"]) for a in refused}
        assert renews_in[0] <= min(retry_after) and max(retry_after) <= renews_in[1], retry_after
    assert usages_by_period(deployment.db, token_id) == {202601: MONTHLY_LIMIT, 202602: MONTHLY_LIMIT}
    with deployment.db.engine.connect() as connection:
        counter = connection.execute(select(Token.used, Token.period).where(Token.id == token_id)).one()
    assert (counter.used, counter.period) == (MONTHLY_LIMIT, 202602)

    queued = assert_in_broker(deployment.amqp_url, accepted_ids(january) | accepted_ids(february))
    # The senders' clocks moved too: each message's `fecha` (Madrid wall time) is of its month.
    fecha = {m["id"]: m["fecha"] for m in queued["cola_sms"]}
    assert all(fecha[i].startswith("2026-01-31 23:59:") for i in accepted_ids(january))
    assert all(fecha[i].startswith("2026-02-01 00:00:") for i in accepted_ids(february))


def test_a_validator_whose_clock_is_behind_never_takes_a_counter_back_to_the_month_before(
    deployment: Deployment,
) -> None:
    """Machine 0's clock lags 15 s behind when the others pass midnight: its checks still carry
    January while the counter already counts February (the same happens without any skew to a
    check stamped a moment before midnight and spent just after it, as a busy validator does).
    A late January spend must not restart the counter in January (that would forget February's
    uses, and give January more than its limit): it is counted in the month the counter is in."""
    drain_vhost(deployment.amqp_url)
    tokens = Tokens(deployment.db, FixedClock(LAST_MINUTE_OF_JANUARY), zone=ZONE)
    token, token_id = tokens.make("application", "scale-skew", restriction="monthly", limit=MONTHLY_LIMIT)
    deployment.set_clocks(LAST_MINUTE_OF_JANUARY)
    january, _ = post_all(deployment.senders, token, PER_MONTH_REQUESTS, "january")
    lag = timedelta(seconds=15)
    deployment.set_clocks(FIRST_SECONDS_OF_FEBRUARY, behind={0: lag})
    february, seconds = post_all(deployment.senders, token, PER_MONTH_REQUESTS, "february")
    assert deployment.clocks[0].now() < MIDNIGHT, "the lagging machine ran into February"
    print(f"\n[scale-out] monthly, one validator 15 s behind: {PER_MONTH_REQUESTS} requests in {seconds:.2f} s")

    accepted = Counter(answer.status for answer in january + february)[202]
    assert accepted == 2 * MONTHLY_LIMIT
    assert usages_by_period(deployment.db, token_id) == {202601: MONTHLY_LIMIT, 202602: MONTHLY_LIMIT}
    with deployment.db.engine.connect() as connection:
        counter = connection.execute(select(Token.used, Token.period).where(Token.id == token_id)).one()
    assert (counter.used, counter.period) == (MONTHLY_LIMIT, 202602)
    assert_in_broker(deployment.amqp_url, accepted_ids(january) | accepted_ids(february))
