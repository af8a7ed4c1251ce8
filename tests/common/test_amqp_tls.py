"""AMQPS: a RabbitMQ node of its own with rabbitmq/tls.conf, certificates from a CA made here
(openssl), our publisher and consume loop over `amqps://` verifying it; a client that trusts
another CA, or only the system's, is refused before it sends a password.

The node runs beside the machine's broker (as /work/shared/scripts/rabbitmq-cluster starts extra
nodes: a node name, ports and a data directory of its own), once for the module, and is
stopped afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pika.exceptions
import pytest
from pydantic import ValidationError

from cartero_common.amqp import connect
from cartero_common.amqp.publisher import AsyncPublisher, BrokerUnavailable
from cartero_common.amqp.tls import context_for
from cartero_common.clock import FixedClock
from cartero_common.consume import ConsumerLoop
from cartero_common.consume.outcomes import Delivery, Done, Outcome
from cartero_common.settings import ServiceSettings
from tests.consumers import running
from tests.support import ROOT, free_port, unavailable, wait_until

pytestmark = pytest.mark.integration

NOW = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
STARTUP_SECONDS = 45


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(directory: Path, name: str) -> None:
    """`<name>.key`/`<name>.pem`: a self-signed CA (P-256)."""
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN=Cartero test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip


def make_server_certificate(directory: Path, ca: str) -> None:
    """`server.key`/`server.pem` for 127.0.0.1 and localhost, signed by `ca`."""
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    openssl(
        "x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip


@dataclass(frozen=True)
class TlsBroker:
    url: str  # amqps://guest:guest@127.0.0.1:<port>/
    ca_file: Path  # the CA that signed the node's certificate
    other_ca_file: Path  # a CA that did not


def node_config(certificates: Path, port: int) -> str:
    """The shipped rabbitmq/tls.conf, its certificate paths pointed at `certificates` and its
    listener at one free port on two loopback addresses (the certificate names only the first);
    no plain AMQP listener at all."""
    shipped = (ROOT / "rabbitmq" / "tls.conf").read_text()
    assert "listeners.ssl.default = 5671" in shipped
    config = shipped.replace("/etc/rabbitmq/tls/", f"{certificates}/")
    listeners = f"listeners.ssl.1 = 127.0.0.1:{port}\nlisteners.ssl.2 = 127.0.0.2:{port}"
    config = config.replace("listeners.ssl.default = 5671", listeners)
    return config + "listeners.tcp = none\n"


def wait_for_tls(url: str, ca_file: Path, log_dir: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            connect(url, ca_file=ca_file, timeout=2.0).close()
            return
        except (pika.exceptions.AMQPError, OSError) as exc:
            if time.monotonic() >= deadline:
                logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in log_dir.glob("*.log"))
                pytest.fail(f"the TLS node did not answer within {STARTUP_SECONDS}s ({exc!r})\n{logs}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[TlsBroker]:
    if shutil.which("rabbitmq-server") is None or shutil.which("openssl") is None:
        unavailable("rabbitmq-server and openssl for a TLS node")
    base = Path(tempfile.mkdtemp(prefix="cartero-tls-node-"))
    certificates = base / "tls"
    certificates.mkdir()
    make_ca(certificates, "ca")
    make_ca(certificates, "other-ca")
    make_server_certificate(certificates, "ca")
    port, dist_port = free_port(), free_port()
    (base / "rabbitmq.conf").write_text(node_config(certificates, port))
    (base / "plugins").write_text("[].\n")
    (base / "log").mkdir()
    # The server scripts run the node as the rabbitmq user: it must own what the node reads.
    subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(base)], check=False, capture_output=True)
    os.chmod(base, 0o755)
    pid_file = base / "pid"
    env = dict(
        os.environ,
        RABBITMQ_NODENAME=f"cartero-tls-{uuid.uuid4().hex[:8]}@localhost",
        RABBITMQ_NODE_PORT=str(free_port()),  # unused (no TCP listener), but must not clash
        RABBITMQ_DIST_PORT=str(dist_port),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
        RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_PID_FILE=str(pid_file),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "plugins"),
    )
    subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, capture_output=True, timeout=30)
    broker = TlsBroker(
        url=f"amqps://guest:guest@127.0.0.1:{port}/",
        ca_file=certificates / "ca.pem",
        other_ca_file=certificates / "other-ca.pem",
    )
    try:
        wait_for_tls(broker.url, broker.ca_file, base / "log")
        yield broker
    finally:
        stop_node(pid_file)
        shutil.rmtree(base, ignore_errors=True)


def stop_node(pid_file: Path) -> None:
    """SIGTERM to the node this fixture started (its own pid file), then wait for it to go."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)


class Recording:
    def __init__(self) -> None:
        self.got: list[dict[str, object]] = []

    def __call__(self, batch: Sequence[Delivery]) -> list[Outcome]:
        messages = [json.loads(d.body) for d in batch]
        self.got.extend(messages)
        return [Done(message=m, consumed_at=NOW) for m in messages]


def test_publisher_and_consumer_exchange_a_message_over_amqps(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The consume loop takes its CA from the environment, as a deployed consumer does.
    monkeypatch.setenv("AMQP_CA_FILE", str(tls_broker.ca_file))
    handler = Recording()
    loop = ConsumerLoop(
        url=tls_broker.url, queue="cola_sms", handler=handler, prefetch=10, clock=FixedClock(NOW), name="tls-test"
    )

    async def publish() -> None:
        publisher = AsyncPublisher(tls_broker.url, timeout=5.0, ca_file=tls_broker.ca_file)
        try:
            body = json.dumps({"id": "tls-1", "mensaje": "hola", "telefono": "+34600111222"}).encode()
            await publisher.publish("cola_sms", body, message_id="tls-1", now=NOW)
        finally:
            await publisher.close()

    with running(loop):
        asyncio.run(publish())
        wait_until(lambda: [m["id"] for m in handler.got] == ["tls-1"], timeout=10, what="the message over TLS")

    def event_count() -> int:
        connection = connect(tls_broker.url, ca_file=tls_broker.ca_file)
        try:
            return int(connection.channel().queue_declare("logs", passive=True).method.message_count)
        finally:
            connection.close()

    wait_until(lambda: event_count() == 1, timeout=10, what="its event on logs")


def test_a_client_trusting_another_ca_is_refused(tls_broker: TlsBroker) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        connect(tls_broker.url, ca_file=tls_broker.other_ca_file, timeout=5.0)

    async def publish() -> BaseException | None:
        publisher = AsyncPublisher(tls_broker.url, timeout=5.0, ca_file=tls_broker.other_ca_file)
        try:
            await publisher.start()
            assert not publisher.connected, "the publisher connected to a broker its CA did not sign"
            with pytest.raises(BrokerUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                await publisher.publish("cola_sms", b"{}", message_id="tls-2", now=NOW)
            return publisher.last_error
        finally:
            await publisher.close()

    refused = asyncio.run(publish())
    # aiormq reports the handshake's SSLCertVerificationError as its AMQPConnectionError.
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused), repr(refused)


def test_without_a_ca_file_only_the_system_trust_store_counts(
    tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMQP_CA_FILE", raising=False)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        connect(tls_broker.url, timeout=5.0)


def test_the_name_in_the_certificate_must_match(tls_broker: TlsBroker) -> None:
    """The certificate names 127.0.0.1 and localhost; the same node reached as 127.0.0.2 is not it."""
    other_name = tls_broker.url.replace("@127.0.0.1:", "@127.0.0.2:")
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        connect(other_name, ca_file=tls_broker.ca_file, timeout=5.0)


def test_tls_settings_are_checked_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_CA_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ValidationError, match="amqp_ca_file"):
        ServiceSettings()
    assert context_for("amqp://guest:guest@localhost:5672/") is None  # plain URLs: no TLS, no file read
    context = context_for("AMQPS://guest:guest@localhost/", ca_file=_system_ca_or_skip())
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def _system_ca_or_skip() -> Path:
    found = Path(ssl.get_default_verify_paths().cafile or "")
    if not found.is_file():
        pytest.skip("no system CA bundle")
    return found
