"""End to end, as a user runs it: `make run`'s launcher, a POST, the message seen consumed."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import time
from functools import partial
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest

from tests.consumers import vhost_of
from tests.e2e.conftest import Suite, delete_role_users, role_users, run_env
from tests.monitor.helpers import consumers_on
from tests.support import ROOT, free_port, isolated_vhost, python_env, rabbit_api, wait_until

pytestmark = pytest.mark.e2e


def _events(suite: Suite, message_id: str) -> list[dict[str, object]]:
    response = httpx.get(f"{suite.events}/v1/events", params={"id": message_id}, headers=suite.read_auth, timeout=5)
    response.raise_for_status()
    events: list[dict[str, object]] = response.json()
    return events


def _consumed(suite: Suite, message_id: str) -> bool:
    return {e["evento"] for e in _events(suite, message_id)} == {"enviado", "consumido"}


def test_sms_json_travels_to_the_message_log(suite: Suite) -> None:
    started = time.monotonic()
    response = httpx.post(
        f"{suite.sender}/v1/sms", json={"mensaje": "hola", "telefono": "+34600111222"}, headers=suite.auth, timeout=5
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]
    events = wait_until(
        lambda: (e := _events(suite, message_id)) and {"enviado", "consumido"} <= {x["evento"] for x in e} and e,
        timeout=10,
        what="enviado and consumido",
    )
    assert time.monotonic() - started < 5
    assert [e["evento"] for e in events] == ["enviado", "consumido"]
    assert events[1]["fecha_consumo"]


def test_the_sender_shows_its_owner_the_message_status(suite: Suite) -> None:
    """make run wires the sender to the message log with the status key it generated."""
    response = httpx.post(
        f"{suite.sender}/v1/sms", json={"mensaje": "hola", "telefono": "+34600111222"}, headers=suite.auth, timeout=5
    )
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]
    url = f"{suite.sender}/v1/messages/{message_id}"
    sent = wait_until(
        lambda: (
            (r := httpx.get(url, headers=suite.auth, timeout=5)).status_code == 200
            and r.json()["status"] == "sent"
            and r.json()
        ),
        timeout=10,
        what="status sent",
    )
    assert [entry["status"] for entry in sent["timeline"]] == ["queued", "sent"]
    assert httpx.get(url, timeout=5).status_code == 401


def test_sms_form_and_email_json_and_form_are_accepted(suite: Suite) -> None:
    auth = suite.auth
    form = httpx.post(
        f"{suite.sender}/v1/sms", data={"mensaje": "hola", "telefono": "600111222"}, headers=auth, timeout=5
    )
    fields = {"destinatario": "ana@example.com", "asunto": "A", "cuerpo": "B"}
    mail_json = httpx.post(f"{suite.sender}/v1/email", json=fields, headers=auth, timeout=5)
    mail_form = httpx.post(f"{suite.sender}/v1/email", data=fields, headers=auth, timeout=5)
    assert [r.status_code for r in (form, mail_json, mail_form)] == [202, 202, 202]
    wait_until(
        lambda: {e["evento"] for e in _events(suite, form.json()["id"])} == {"enviado", "consumido"},
        timeout=10,
        what="form SMS consumed",
    )
    for mail in (mail_json, mail_form):
        mail_id = mail.json()["id"]
        wait_until(partial(_consumed, suite, mail_id), timeout=10, what="email consumed")
        # The embedded default writes each email as an .eml file under var/mail.
        assert (suite.var / "mail" / f"{mail_id}.eml").read_bytes().startswith(b"From: ")


def test_first_run_credentials_are_private_and_work(suite: Suite) -> None:
    first = suite.first_run()
    assert first["ADMIN_USERNAME"] and first["ADMIN_PASSWORD"] and first["DEMO_TOKEN"].startswith("app_")
    for private in ("first-run.txt", "secrets.env"):
        assert stat.S_IMODE((suite.var / private).stat().st_mode) == 0o600
    keys = dict(line.split("=", 1) for line in (suite.var / "secrets.env").read_text().splitlines())
    admin = {"Authorization": f"Bearer {keys['VALIDATOR_ADMIN_KEY']}"}
    signed_in = httpx.post(
        f"{suite.validator}/v1/admin/sessions",
        json={"username": first["ADMIN_USERNAME"], "password": first["ADMIN_PASSWORD"]},
        headers=admin,
        timeout=5,
    )
    assert signed_in.status_code == 200, signed_in.text
    # The webhooks key, generated with the others, opens the delivery side's read route.
    webhooks = httpx.get(
        f"{suite.validator}/v1/webhooks/endpoints",
        params={"owner_ref": "application:1"},
        headers={"Authorization": f"Bearer {keys['VALIDATOR_WEBHOOKS_KEY']}"},
        timeout=5,
    )
    assert webhooks.status_code == 200 and webhooks.json() == {"items": []}, webhooks.text
    anonymous = httpx.post(f"{suite.sender}/v1/sms", json={"mensaje": "hola", "telefono": "600111222"}, timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "missing_token"
    log_text = "".join(p.read_text(errors="replace") for p in (suite.var / "log").glob("*.log"))
    assert first["DEMO_TOKEN"] not in log_text


def test_each_process_connects_as_its_own_rabbitmq_user(suite: Suite) -> None:
    """make run creates the production roles on the local broker and gives each process its own."""
    users = role_users(suite.var)
    assert set(users) == {
        "sender",
        "consumer_sms",
        "consumer_email",
        "consumer_logs",
        "consumer_webhooks",
        "dead_letters",
        "monitor",
        "php",
    }
    saved = dict(line.split("=", 1) for line in (suite.var / "secrets.env").read_text().splitlines() if "=" in line)
    run_output = (suite.var / "run.out").read_text()
    for role in users:
        assert saved[f"RABBITMQ_{role.upper()}_PASSWORD"] not in run_output, f"make run printed the {role} password"

    def connected_users() -> set[str]:
        listed = rabbit_api("GET", f"/vhosts/{quote(vhost_of(suite.amqp_url), safe='')}/connections").json()
        return {c["user"] for c in listed}

    # The sender connects on its first publish: send one.
    posted = httpx.post(
        f"{suite.sender}/v1/sms", json={"mensaje": "roles", "telefono": "600111222"}, headers=suite.auth, timeout=5
    )
    assert posted.status_code == 202, posted.text
    wanted = {
        users[role] for role in ("sender", "consumer_sms", "consumer_email", "consumer_logs", "consumer_webhooks")
    }
    wait_until(lambda: wanted <= connected_users(), timeout=30, what="each role's connection listed")


def test_openapi_and_logs(suite: Suite) -> None:
    spec = httpx.get(f"{suite.sender}/openapi.json", timeout=5).json()
    assert {"/v1/sms", "/v1/email"} <= set(spec["paths"])
    assert (suite.var / "log" / "sender.log").exists()
    # Every SQLite file under CARTERO_VAR, none in the working tree's var/.
    assert {"consumer_logs.db", "consumer_sms.db", "consumer_email.db"} <= {p.name for p in suite.var.iterdir()}


def test_monitor_started_the_sms_consumer(suite: Suite) -> None:
    def created() -> list[dict[str, object]]:
        found = httpx.get(
            f"{suite.events}/v1/events",
            params={"evento": "creacion", "cola": "cola_sms"},
            headers=suite.read_auth,
            timeout=5,
        )
        found.raise_for_status()
        events: list[dict[str, object]] = found.json()
        return events

    events = wait_until(created, timeout=10, what="the creacion event in the message log")
    assert [(e["replicas"], str(e["contenedor"]).split("-")[0]) for e in events] == [(1, "consumer_sms")]
    page = httpx.get(f"{suite.monitor_sms}/metrics", timeout=5).text
    assert 'monitor_replicas{kind="running",queue="cola_sms"} 1.0' in page


def _listening(port: int) -> set[str]:
    """The local addresses a TCP socket of this machine listens on at `port` (from /proc/net)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    words = bytes.fromhex(address)
                    raw = b"".join(words[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


def test_every_listener_is_on_this_host_only(suite: Suite) -> None:
    """The HTTP services, the monitors' and the consumers' metrics: 127.0.0.1, not every interface."""
    required = ("sender", "logs", "validator", "panel", "dead_letters", "monitor_sms", "monitor_email", "sms_metrics")
    for name, port in suite.ports.items():
        addresses = _listening(port)
        if name in required:
            assert addresses, f"nothing listens on {name}'s port {port}"
        assert addresses <= {"127.0.0.1"}, (name, addresses)


def test_var_is_private_and_no_secret_is_printed(suite: Suite) -> None:
    """Under umask 077: every file `make run` made under var/ is its user's only, and what it
    printed holds none of the keys it generated, nor the broker's password."""
    exposed = []
    for path in [suite.var, *suite.var.rglob("*")]:
        if path.name == "run.out":  # this test's own capture of the output
            continue
        mode = stat.S_IMODE(path.lstat().st_mode)
        if not path.is_symlink() and mode & 0o077:
            exposed.append((str(path.relative_to(suite.var)), oct(mode)))
    assert not exposed, exposed
    assert {"consumer_logs.db", "token_validator.db", "secrets.env", "log"} <= {p.name for p in suite.var.iterdir()}
    printed = (suite.var / "run.out").read_text(errors="replace")
    secrets = suite.secrets()
    keys = {
        "VALIDATOR_SERVICE_KEY",
        "VALIDATOR_ADMIN_KEY",
        "VALIDATOR_WEBHOOKS_KEY",
        "PANEL_SECRET_KEY",
        "CONSUMER_LOGS_READ_KEY",
        "CONSUMER_LOGS_STATUS_KEY",
        "DEAD_LETTERS_KEY",
    }
    # Besides the keys, each RabbitMQ role's user name and password (local/rabbitmq_roles.py).
    role_passwords = {name for name in secrets if name.startswith("RABBITMQ_") and name.endswith("_PASSWORD")}
    role_users = {name for name in secrets if name.startswith("RABBITMQ_") and name.endswith("_USER")}
    assert keys <= set(secrets) and set(secrets) == keys | role_passwords | role_users
    assert len(role_passwords) == 8, sorted(secrets)
    for name in keys | role_passwords:
        value = secrets[name]
        assert len(value) >= 32 and value not in printed, name
    password = urlsplit(suite.amqp_url).password
    assert password and f":{password}@" not in printed


def test_the_message_log_needs_its_key_and_keeps_content_under_make_run(suite: Suite) -> None:
    assert httpx.get(f"{suite.events}/v1/events", timeout=5).status_code == 401
    sent = httpx.post(
        f"{suite.sender}/v1/sms",
        json={"mensaje": "texto local", "telefono": "+34600111333"},
        headers=suite.auth,
        timeout=5,
    )
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["id"]
    events = wait_until(lambda: _events(suite, message_id), timeout=10, what="the enviado event")
    # CONSUMER_LOGS_STORE_CONTENT=true under make run; a lookup by id shows the number whole.
    assert events[0]["mensaje"] == "texto local" and events[0]["telefono"] == "+34600111333"


def test_run_refuses_to_start_without_a_broker(tmp_path: object) -> None:
    password = "not-printed-3f9a1c"
    env = python_env(AMQP_URL=f"amqp://cartero:{password}@127.0.0.1:{free_port()}/", CARTERO_VAR=str(tmp_path))
    result = subprocess.run([str(ROOT / "local" / "run.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "RabbitMQ is not reachable" in result.stderr
    assert "rabbitmq-server" in result.stderr
    # Where it looked, with the password masked.
    assert "amqp://cartero:***@127.0.0.1:" in result.stderr
    assert password not in result.stdout + result.stderr


READY_WAIT = 40


def test_a_service_that_never_answers_is_named_and_run_exits(tmp_path: Path) -> None:
    """The panel's port is taken by a socket that never answers: make run names the panel, shows
    its log's tail, stops everything and exits non-zero within READY_TIMEOUT_SECONDS."""
    with isolated_vhost("cartero-e2e-unready") as amqp_url, socket.socket() as squatter:
        env, ports = run_env(tmp_path, amqp_url)
        squatter.bind(("127.0.0.1", ports["panel"]))
        squatter.listen()
        # Long enough for every other service to be ready on a loaded 2-core machine (it took
        # more than 15 s there), so that only the panel can be the one named.
        env["READY_TIMEOUT_SECONDS"] = str(READY_WAIT)
        started = time.monotonic()
        try:
            result = subprocess.run(
                [str(ROOT / "local" / "run.sh")], env=env, capture_output=True, text=True, timeout=120
            )
        finally:
            delete_role_users(tmp_path)
        took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Cartero is ready" not in result.stdout
    assert "token_panel did not become ready" in result.stderr
    assert "last lines of" in result.stderr and "token_panel.log" in result.stderr
    assert "address already in use" in result.stderr.lower(), result.stderr
    for other in ("sender", "token_validator", "consumer_logs"):
        assert f"{other} did not become ready" not in result.stderr
    assert took < READY_WAIT + 60, took
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{ports['sender']}/healthz", timeout=2)


def test_ctrl_c_stops_every_process(tmp_path_factory: object, suite: Suite) -> None:
    """Runs last in this module: stops the shared suite the way a user does."""
    suite.process.send_signal(signal.SIGINT)
    assert suite.process.wait(60) == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{suite.sender}/healthz", timeout=2)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{suite.events}/healthz", timeout=2)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{suite.validator}/healthz", timeout=2)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{suite.panel}/healthz", timeout=2)
    # The consumers the monitors started went with them.
    assert consumers_on(suite.amqp_url, "cola_sms") == 0
