"""Test plumbing for the real services on this machine: isolated vhosts, databases and ports."""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pika
import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[1]
RABBIT_HOST = os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1")
RABBIT_API = os.environ.get("TEST_RABBITMQ_API", f"http://{RABBIT_HOST}:15672/api")
RABBIT_AUTH = ("guest", "guest")
PG_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str) -> None:
    """A missing service fails the run in CI and only skips on a laptop."""
    if IN_CI:
        pytest.fail(f"{what} is not available, and CI must not skip", pytrace=False)
    pytest.skip(f"{what} is not available")


# Servers started by tests and the benchmark listen on ports from below the kernel's ephemeral
# range. `bind(0)` picks from inside it, where an outgoing connection (to the broker, a database,
# another service) may take the port between the pick and the server's own bind: `make run` then
# failed with "address already in use" on a busy machine.
_PORTS_FROM = 10_000
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port free now on 127.0.0.1, not handed out before by this process, and (where the
    kernel's ephemeral range leaves room under it) outside that range."""
    below = _ephemeral_start()
    if below - _PORTS_FROM >= 1_000:
        for _ in range(200):
            port = random.randrange(_PORTS_FROM, below)
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rabbit_api(method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{RABBIT_API}{path}", auth=RABBIT_AUTH, timeout=10, **kwargs)


def create_vhost(prefix: str = "cartero-test") -> str:
    vhost = f"{prefix}-{uuid.uuid4().hex[:10]}"
    try:
        rabbit_api("PUT", f"/vhosts/{quote(vhost, safe='')}").raise_for_status()
        rabbit_api(
            "PUT",
            f"/permissions/{quote(vhost, safe='')}/guest",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
    except httpx.HTTPError as exc:
        unavailable(f"RabbitMQ management API at {RABBIT_API} ({exc})")
    return vhost


def delete_vhost(vhost: str) -> None:
    rabbit_api("DELETE", f"/vhosts/{quote(vhost, safe='')}")


def amqp_url_for(vhost: str) -> str:
    return f"amqp://guest:guest@{RABBIT_HOST}:5672/{quote(vhost, safe='')}"


@contextmanager
def isolated_vhost(prefix: str = "cartero-test") -> Iterator[str]:
    """An AMQP URL on a fresh vhost, deleted afterwards (with every queue in it)."""
    vhost = create_vhost(prefix)
    try:
        yield amqp_url_for(vhost)
    finally:
        delete_vhost(vhost)


@contextmanager
def rabbitmq_roles(vhost: str) -> Iterator[dict[str, str]]:
    """The real `rabbitmq-setup` on `vhost` with one user per role of rabbitmq/definitions.json,
    named for this run only (parallel runs never share one); yields each role's AMQP URL and
    deletes the users afterwards (the vhost is the caller's to delete)."""
    from pydantic import SecretStr

    from cartero_common.amqp.setup import RoleCredentials, SetupSettings, load_definitions, run

    definitions = ROOT / "rabbitmq" / "definitions.json"
    tag = uuid.uuid4().hex[:10]
    credentials = {
        role.role: RoleCredentials(user=f"cartero-test-{role.role}-{tag}", password=SecretStr(uuid.uuid4().hex))
        for role in load_definitions(definitions).roles
    }
    settings = SetupSettings.model_validate(
        {
            "rabbitmq_api_url": RABBIT_API,
            "rabbitmq_admin_user": RABBIT_AUTH[0],
            "rabbitmq_admin_password": SecretStr(RABBIT_AUTH[1]),
            "rabbitmq_vhost": vhost,
            "rabbitmq_definitions": definitions,
            "rabbitmq_setup_timeout": 5.0,
        }
    )
    try:
        run(settings, credentials)
        yield {
            role: f"amqp://{c.user}:{c.password.get_secret_value()}@{RABBIT_HOST}:5672/{quote(vhost, safe='')}"
            for role, c in credentials.items()
        }
    finally:
        for c in credentials.values():
            rabbit_api("DELETE", f"/users/{quote(c.user, safe='')}")


@contextmanager
def isolated_database(prefix: str = "cartero_test") -> Iterator[str]:
    """A SQLAlchemy URL to a new PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(PG_ADMIN_DSN)
    except psycopg2.OperationalError as exc:
        unavailable(f"PostgreSQL ({exc})")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _passive(amqp_url: str, queue: str) -> Any:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return connection.channel().queue_declare(queue, passive=True).method
    finally:
        connection.close()


def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in `queue` (not those delivered and not yet acked)."""
    return int(_passive(amqp_url, queue).message_count)


def consumer_count(amqp_url: str, queue: str) -> int:
    return int(_passive(amqp_url, queue).consumer_count)


def drain(amqp_url: str, queue: str, *, max_messages: int = 10_000) -> list[tuple[pika.BasicProperties, bytes]]:
    """Every message now in `queue`, acked (removed)."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    got: list[tuple[pika.BasicProperties, bytes]] = []
    try:
        channel = connection.channel()
        while len(got) < max_messages:
            method, properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                break
            got.append((properties, body))
    finally:
        connection.close()
    return got


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = predicate()
        except Exception:  # noqa: BLE001 - not there yet
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_http(url: str, *, timeout: float = 20.0) -> None:
    wait_until(lambda: httpx.get(url, timeout=1).status_code < 500, timeout=timeout, what=url)


def python_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def stop_process(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def served(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free port in a thread of this process; its base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, name=f"served-{port}", daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=20, what=f"server on port {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def shared_dir() -> Path | None:
    """The project's `shared/` folder: beside the checkout in CI, higher up for a git worktree,
    or wherever CARTERO_SHARED_DIR says."""
    if override := os.environ.get("CARTERO_SHARED_DIR"):
        return Path(override)
    return next((parent / "shared" for parent in ROOT.parents if (parent / "shared" / "scripts").is_dir()), None)


def container_engine() -> str:
    """Sets up the Docker-API engine (`shared/scripts/container-engine`: Podman on these machines;
    root installs it the first time, about a minute) and returns its DOCKER_HOST."""
    shared = shared_dir()
    script = shared / "scripts" / "container-engine" if shared else None
    if script is None or not script.is_file():
        unavailable("the container-engine script (../shared/scripts/container-engine, or set CARTERO_SHARED_DIR)")
    assert script is not None
    if os.geteuid() != 0:
        unavailable("the container engine (its setup needs root)")
    try:
        result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        unavailable(f"the container engine ({exc})")
        raise
    found = re.search(r"export DOCKER_HOST=(\S+)", result.stdout)
    if result.returncode != 0 or found is None:
        unavailable(f"the container engine ({script} exited {result.returncode}: {result.stderr[-1500:]})")
    assert found is not None
    return found.group(1)


def record_figures(path: Path, name: str, **figures: float) -> None:
    """Figures a test measured, under `name` in the JSON file `path` (git-ignored
    test-artifacts/), rounded to the millisecond, beside those of the other tests writing there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    found = json.loads(path.read_text()) if path.exists() else {}
    found[name] = {key: round(value, 3) for key, value in figures.items()}
    path.write_text(json.dumps(found, indent=2, sort_keys=True))
