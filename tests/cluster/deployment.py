"""Real services on the cluster: a token validator (SQLite), a sender (uvicorn) and consumer_sms
delivering to a recording HTTP gateway, each its own process with every node in AMQP_URL; and a
steady load of SMS requests on the sender, every answer kept."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from tests.cluster.netns_cluster import AUTH, NetnsCluster, Node
from tests.consumers import FAST_DELAYS, Gateway
from tests.support import ROOT, free_port, python_env, stop_process, wait_until
from tests.token_validator.support import ADMIN_KEY, SERVICE_KEY, Tokens, migrated

# The clients notice a node cut off from them by heartbeats alone (its packets stop; no FIN,
# no RST): a short heartbeat, as for any client that must fail over within seconds.
HEARTBEAT_SECONDS = 1


def topology(cluster: NetnsCluster, node: Node, vhost: str, log: Path) -> None:
    """`rabbitmq-setup` through `node`'s management API, quorum queues: 3.10 puts each quorum
    queue's leader on the node that declared it. PHP declares off: 3.10.8 would refuse them on
    quorum queues (`cartero_common/amqp/setup_queue_type.py`)."""
    env = python_env(
        RABBITMQ_API_URL=node.api_url,
        RABBITMQ_ADMIN_USER=AUTH[0],
        RABBITMQ_ADMIN_PASSWORD=AUTH[1],
        RABBITMQ_VHOST=vhost,
        RABBITMQ_DEFINITIONS=str(ROOT / "rabbitmq" / "definitions.json"),
        RABBITMQ_SETUP_TIMEOUT="10",
        CARTERO_QUEUE_TYPE="quorum",
        CARTERO_PHP_DECLARES="false",
    )
    with log.open("ab") as out:
        done = subprocess.run(
            [sys.executable, "-m", "cartero_common", "rabbitmq-setup"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=60,
        )
    assert done.returncode == 0, f"rabbitmq-setup failed: {log.read_text()[-2000:]}"


@dataclass
class Services:
    sender: str
    token: str
    gateway: Gateway
    consumer_log: Path
    logs: Path


def _start(module: str, env: dict[str, str], log: Path, stack: ExitStack) -> subprocess.Popen[bytes]:
    output = stack.enter_context(log.open("ab"))
    process = subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=output, stderr=output)
    stack.callback(stop_process, process)
    return process


def _consumers_on(node: Node, vhost: str, queue: str) -> int:
    from urllib.parse import quote

    found = node.api("GET", f"/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}").raise_for_status().json()
    return int(found.get("consumers", 0))


def connections_by_node(node: Node, vhost: str) -> dict[str, int]:
    """The vhost's client connections, counted by the node each is on."""
    from urllib.parse import quote

    found = node.api("GET", f"/vhosts/{quote(vhost, safe='')}/connections").raise_for_status().json()
    counts: dict[str, int] = {}
    for connection in found:
        counts[connection["node"]] = counts.get(connection["node"], 0) + 1
    return counts


@contextmanager
def services(cluster: NetnsCluster, victim: Node, vhost: str, logs: Path) -> Iterator[Services]:
    """The services, every one connected to `victim`: the other nodes' client links are down
    while they start, and up again before this yields."""
    urls = ",".join([victim.amqp_url(vhost)] + [n.amqp_url(vhost) for n in cluster.nodes if n is not victim])
    common = {
        "AMQP_URL": urls,
        "CARTERO_QUEUE_TYPE": "quorum",
        "LOG_LEVEL": "INFO",
        "AMQP_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "CONSUMER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
    }
    database_url = f"sqlite:///{logs}/token_validator.db"
    db = migrated(database_url)
    token, _ = Tokens(db).make("application", "cluster")
    db.dispose()
    others = [n for n in cluster.nodes if n is not victim]
    with ExitStack() as stack, Gateway() as gateway:
        validator_port, sender_port = free_port(), free_port()
        _start(
            "token_validator",
            python_env(
                DATABASE_URL=database_url,
                VALIDATOR_SERVICE_KEY=SERVICE_KEY,
                VALIDATOR_ADMIN_KEY=ADMIN_KEY,
                TOKEN_VALIDATOR_PORT=str(validator_port),
                LOG_LEVEL="WARNING",
            ),
            logs / "validator.log",
            stack,
        )
        validator = f"http://127.0.0.1:{validator_port}"
        wait_until(
            lambda: httpx.get(f"{validator}/healthz", timeout=1).status_code == 200, timeout=60, what="validator"
        )
        for node in others:
            cluster.set_links(node, up=False, which=("client",))
        try:
            sender = _start(
                "sender",
                python_env(
                    **common,
                    SENDER_PORT=str(sender_port),
                    VALIDATOR_URL=validator,
                    VALIDATOR_SERVICE_KEY=SERVICE_KEY,
                ),
                logs / "sender.log",
                stack,
            )
            consumer_log = logs / "consumer_sms.log"
            consumer = _start(
                "consumer_sms",
                python_env(
                    **common,
                    DATABASE_URL=f"sqlite:///{logs}/consumer_sms.db",
                    SMS_PROVIDER="http",
                    SMS_GATEWAY_URL=gateway.url,
                    SMS_GATEWAY_TIMEOUT="5",
                    CONSUMER_SMS_METRICS_PORT="0",
                    CONSUMER_RETRY_DELAYS=FAST_DELAYS,
                ),
                consumer_log,
                stack,
            )
            base = f"http://127.0.0.1:{sender_port}"

            def ready() -> bool:
                assert sender.poll() is None, f"sender exited: {(logs / 'sender.log').read_text()[-2000:]}"
                assert consumer.poll() is None, f"consumer exited: {consumer_log.read_text()[-2000:]}"
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200 and (
                    _consumers_on(victim, vhost, "cola_sms") > 0
                )

            wait_until(ready, timeout=90, interval=0.3, what="the sender ready and a consumer on cola_sms")
        finally:
            for node in others:
                cluster.set_links(node, up=True, which=("client",))
        yield Services(base, token, gateway, consumer_log, logs)


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic()
    answered: float
    status: int  # 0: no answer (a timeout, a refused connection)
    message_id: str | None
    code: str | None = None  # a problem's `code` (broker_unavailable, publish_unconfirmed, …)


@dataclass
class Load:
    """POST /v1/sms at `rate` requests a second, on a thread of its own, until `stop`; each
    request its own task, so a slow answer never delays the next request."""

    url: str
    token: str
    rate: float
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(60)
        return sorted(self.answers, key=lambda answer: answer.sent)

    async def _run(self) -> None:
        auth = {"Authorization": f"Bearer {self.token}"}
        timeout = aiohttp.ClientTimeout(total=15)
        async with aiohttp.ClientSession(base_url=self.url, timeout=timeout, headers=auth) as session:
            tasks: set[asyncio.Task[None]] = set()
            started = time.monotonic()
            n = 0
            while not self._stop.is_set():
                task = asyncio.create_task(self._one(session, n))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
                await asyncio.sleep(max(0.0, started + n / self.rate - time.monotonic()))
            if tasks:
                await asyncio.gather(*tasks)

    async def _one(self, session: aiohttp.ClientSession, n: int) -> None:
        sent = time.monotonic()
        body = {"mensaje": f"cluster {n}", "telefono": "+34600111222"}
        try:
            async with session.post("/v1/sms", json=body) as response:
                payload: dict[str, Any] = json.loads(await response.read() or b"{}")
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError):
            payload, status = {}, 0
        message_id = payload.get("id") if status == 202 else None
        code = None if status == 202 else payload.get("code")
        self.answers.append(Answer(sent, time.monotonic(), status, message_id, code))
