"""How soon the suite works again once its broker is back: `sender_recovery_s` (from the broker's
`start_app` returning to the sender's next 202) and `consumer_recovery_s` (to a consumer_sms
holding its subscription again).

On a RabbitMQ node of its own (`rabbitmq-server` on free ports, its data in a temporary folder),
stopped with `rabbitmqctl stop_app` and started with `start_app` while a sender is asked for a
message every 10 ms: the machine's broker, which the other phases and other work use, is never
touched. The sender, the validator and the consumer are the real processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pika

from bench.services import sender_process
from tests.support import free_port, stop_process, wait_http

STARTUP_S = 90.0


@dataclass(frozen=True)
class Node:
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def ctl(self, *args: str, timeout: float = STARTUP_S) -> None:
        subprocess.run(["rabbitmqctl", "-q", "-n", self.name, *args], check=True, capture_output=True, timeout=timeout)


@contextmanager
def private_node() -> Iterator[Node]:
    """A standalone RabbitMQ node (guest on 127.0.0.1 only, no plugins), removed afterwards."""
    port, dist = free_port(), free_port()
    # The node runs as the rabbitmq user (Debian's wrapper): a folder it can write.
    base = Path(tempfile.mkdtemp(prefix="cartero-bench-rabbit-"))
    base.chmod(0o755)
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n")
    (base / "enabled_plugins").write_text("[].\n")
    shutil.chown(base, "rabbitmq", "rabbitmq")
    for child in base.iterdir():
        shutil.chown(child, "rabbitmq", "rabbitmq")
    node = Node(f"cartero-bench-{port}@localhost", port)
    env = dict(
        os.environ,
        RABBITMQ_NODENAME=node.name,
        RABBITMQ_NODE_PORT=str(port),
        RABBITMQ_DIST_PORT=str(dist),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_PID_FILE=str(base / "pid"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
    )
    subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, capture_output=True, timeout=60)
    failed = True
    try:
        # `await_startup` gives up at once while the node is not up enough to be asked: ask again.
        deadline = time.monotonic() + STARTUP_S
        while True:
            try:
                node.ctl("await_startup", "--timeout", "5", timeout=30)
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the private RabbitMQ node did not start; see {base}/log") from None
                time.sleep(0.5)
        yield node
        failed = False
    finally:
        subprocess.run(["rabbitmqctl", "-q", "-n", node.name, "stop"], capture_output=True, timeout=60)
        if failed:
            print(f"bench: the private RabbitMQ node's files are kept in {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


def consumers_on(url: str, queue: str) -> int:
    """Consumers subscribed to `queue` now (a passive declare: live, unlike the management API's
    statistics); 0 while the broker is not there."""
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url + "?connection_attempts=1&socket_timeout=1"))
    except pika.exceptions.AMQPError:
        return 0
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.consumer_count)
    except pika.exceptions.AMQPError:
        return 0
    finally:
        if connection.is_open:
            connection.close()


class Prober:
    """Asks the sender for one SMS every `every` seconds, noting when each 202 came."""

    def __init__(self, sender_url: str, token: str, every: float = 0.01) -> None:
        self.sender_url, self.token, self.every = sender_url, token, every
        self.accepted: list[float] = []
        self.refused: list[float] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="recovery-prober", daemon=True)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.sender_url, headers=headers, timeout=5.0) as client:
            while not self.stopping.is_set():
                try:
                    code = client.post("/v1/sms", json={"mensaje": "hola", "telefono": "+34600111222"}).status_code
                except httpx.HTTPError:
                    code = 0
                (self.accepted if code == 202 else self.refused).append(time.monotonic())
                time.sleep(self.every)

    def first_accepted_after(self, moment: float) -> float | None:
        return next((t for t in self.accepted if t >= moment), None)


def measure(env: dict[str, str], token: str, workdir: Path, *, timeout: float = 30.0) -> tuple[float, float]:
    """(sender_recovery_s, consumer_recovery_s) for one stop/start of a private node."""
    with private_node() as node, ExitStack() as stack:
        port = free_port()
        run_env = dict(
            env,
            AMQP_URL=node.url,
            SENDER_PORT=str(port),
            SENDER_WORKERS="1",
            SMS_PROVIDER="log",
            DATABASE_URL=f"sqlite:///{workdir}/recovery-ledger-{uuid.uuid4().hex}.db",
            CONSUMER_SMS_METRICS_PORT="0",
        )
        # The validator keeps its own database: only the broker's URL changes for these two.
        run_env.pop("CONSUMER_SMS_DATABASE_URL", None)
        sender = sender_process(run_env, workdir / "recovery-sender.log")
        stack.callback(stop_process, sender)
        with (workdir / "recovery-consumer.log").open("ab") as out:
            consumer = subprocess.Popen(
                [sys.executable, "-m", "consumer_sms"], env=run_env, stdout=out, stderr=subprocess.STDOUT
            )
        stack.callback(stop_process, consumer)
        sender_url = f"http://127.0.0.1:{port}"
        wait_http(f"{sender_url}/readyz", timeout=60)
        deadline = time.monotonic() + 60
        while consumers_on(node.url, "cola_sms") < 1:
            if time.monotonic() > deadline:
                raise TimeoutError("consumer_sms never subscribed to the private node")
            time.sleep(0.05)
        prober = Prober(sender_url, token)
        prober.thread.start()
        stack.callback(prober.thread.join, 10)
        stack.callback(prober.stopping.set)
        time.sleep(0.5)
        if not prober.accepted:
            raise RuntimeError("the sender accepted nothing before the broker stopped")
        node.ctl("stop_app")
        stopped = time.monotonic()
        time.sleep(1.0)  # every client has seen the broker go
        if prober.first_accepted_after(stopped + 0.5) is not None or not prober.refused:
            raise RuntimeError("the sender went on accepting with its broker stopped")
        # "Back" is the moment the node's AMQP port accepts a connection again, which comes
        # before `start_app` returns (its last boot steps run with the listener open).
        starting = threading.Thread(target=node.ctl, args=("start_app",), daemon=True)
        starting.start()
        back = listening_again(node.port, timeout=STARTUP_S)
        consumer_back: float | None = None
        while consumer_back is None or prober.first_accepted_after(back) is None:
            if consumer_back is None and consumers_on(node.url, "cola_sms") >= 1:
                consumer_back = time.monotonic()
            if time.monotonic() - back > timeout:
                raise TimeoutError(f"not working again {timeout}s after the broker was back")
            time.sleep(0.01)
        starting.join(STARTUP_S)
        first = prober.first_accepted_after(back)
        assert first is not None
        return first - back, consumer_back - back


def listening_again(port: int, *, timeout: float) -> float:
    """When 127.0.0.1:`port` first accepts a TCP connection, polled every 2 ms."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return time.monotonic()
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the node did not listen again within {timeout}s") from None
            time.sleep(0.002)
