"""`python -m cartero_common rabbitmq-setup` against the machine's real RabbitMQ, each run on a
vhost and role users of its own, all removed afterwards. What each role may do is in
test_rabbitmq_roles.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pika
import pika.exceptions
import pytest
from pydantic import SecretStr

from cartero_common.amqp.setup import (
    RoleCredentials,
    SetupError,
    SetupSettings,
    load_definitions,
    parse_version,
    run,
)
from cartero_common.wire import SHARED_QUEUES, route_exchange
from tests.support import (
    RABBIT_API,
    RABBIT_AUTH,
    RABBIT_HOST,
    ROOT,
    queue_depth,
    rabbit_api,
    unavailable,
    wait_until,
)

DEFINITIONS = ROOT / "rabbitmq" / "definitions.json"
ROLES = (
    "sender",
    "consumer_sms",
    "consumer_email",
    "consumer_logs",
    "consumer_webhooks",
    "dead_letters",
    "monitor",
    "php",
)
pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Target:
    vhost: str
    tag: str
    password: str

    def user(self, role: str) -> str:
        return f"cartero-test-{role}-{self.tag}"

    def credentials(self, *roles: str) -> dict[str, RoleCredentials]:
        return {role: RoleCredentials(user=self.user(role), password=SecretStr(self.password)) for role in roles}

    def settings(self, **changes: object) -> SetupSettings:
        values: dict[str, object] = {
            "rabbitmq_api_url": RABBIT_API,
            "rabbitmq_admin_user": RABBIT_AUTH[0],
            "rabbitmq_admin_password": SecretStr(RABBIT_AUTH[1]),
            "rabbitmq_vhost": self.vhost,
            "rabbitmq_definitions": DEFINITIONS,
            "rabbitmq_setup_timeout": 5.0,
        }
        values.update(changes)
        return SetupSettings.model_validate(values)

    def url(self, role: str) -> str:
        return f"amqp://{self.user(role)}:{self.password}@{RABBIT_HOST}:5672/{quote(self.vhost, safe='')}"


@pytest.fixture
def target() -> Iterator[Target]:
    """A vhost and user names nobody else uses; the setup creates them, the fixture deletes them."""
    tag = uuid.uuid4().hex[:10]
    try:
        rabbit_api("GET", "/overview").raise_for_status()
    except Exception as exc:  # noqa: BLE001 - any failure means the API is not there
        unavailable(f"RabbitMQ management API at {RABBIT_API} ({exc})")
    found = Target(vhost=f"cartero-test-setup-{tag}", tag=tag, password=uuid.uuid4().hex)
    try:
        yield found
    finally:
        rabbit_api("DELETE", f"/vhosts/{quote(found.vhost, safe='')}")
        for role in ROLES:
            rabbit_api("DELETE", f"/users/{quote(found.user(role), safe='')}")


def queue_info(target: Target, name: str) -> dict[str, object]:
    response = rabbit_api("GET", f"/queues/{quote(target.vhost, safe='')}/{quote(name, safe='')}")
    response.raise_for_status()
    info: dict[str, object] = response.json()
    return info


def test_shared_queues_are_durable_and_argument_free_with_policies(target: Target) -> None:
    report = run(target.settings())
    # The shared queues and their DLQs, then the webhook queues (ours, argument-free too).
    assert report.queues == [
        "cola_sms",
        "correos",
        "logs",
        "cola_sms.dlq",
        "correos.dlq",
        "logs.dlq",
        "webhooks",
        "webhook_deliveries",
        "webhooks.dlq",
        "webhook_deliveries.dlq",
    ]
    for name in report.queues:
        info = queue_info(target, name)
        assert info["durable"] is True and info["auto_delete"] is False
        arguments = dict(info["arguments"])  # type: ignore[call-overload]
        arguments.pop("x-queue-type", None)  # newer brokers show the type they chose
        assert arguments == {}, name
    # The management API shows a queue's policy with its next statistics update.
    sms = wait_until(lambda: (info := queue_info(target, "cola_sms"))["policy"] and info, timeout=15, what="policy")
    assert sms["policy"] == "cartero-cola_sms"
    assert sms["effective_policy_definition"] == {
        "dead-letter-exchange": "",
        "dead-letter-routing-key": "cola_sms.dlq",
    }
    assert wait_until(lambda: queue_info(target, "correos.dlq")["policy"], timeout=15) == "cartero-dlq"


def test_the_php_declaration_still_matches_and_the_php_user_can_use_the_vhost(target: Target) -> None:
    report = run(target.settings(), target.credentials("php"))
    assert report.users == {"php": target.user("php")}
    connection = pika.BlockingConnection(pika.URLParameters(target.url("php")))
    try:
        channel = connection.channel()
        for queue in ("cola_sms", "correos", "logs"):
            # queue_declare('cola_sms', false, true, false, false), as the PHP services do.
            channel.queue_declare(queue, passive=False, durable=True, exclusive=False, auto_delete=False)
        channel.confirm_delivery()
        channel.basic_publish("", "cola_sms", b'{"id": "x"}', mandatory=True)
        assert channel.queue_declare("cola_sms", passive=True).method.message_count == 1
        # A message rejected without requeue is parked in the DLQ by the policy, not lost.
        method, _, _ = channel.basic_get("cola_sms")
        assert method is not None
        channel.basic_reject(method.delivery_tag, requeue=False)
    finally:
        connection.close()
    wait_until(lambda: queue_depth(target.url("php"), "cola_sms.dlq") == 1, timeout=10, what="the dead letter")


def test_running_it_again_changes_nothing_and_succeeds(target: Target) -> None:
    first = run(target.settings())
    second = run(target.settings())
    assert (first.queue_type, first.queues, first.policies) == (second.queue_type, second.queues, second.policies)


def test_the_queue_type_is_classic_unless_asked_otherwise(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """CARTERO_QUEUE_TYPE decides, on any broker; the definitions no longer do
    (tests/deploy/test_rabbitmq_setup_quorum.py has quorum)."""
    monkeypatch.delenv("CARTERO_QUEUE_TYPE", raising=False)
    report = run(target.settings())
    assert report.queue_type == "classic"
    assert "CARTERO_QUEUE_TYPE=classic" in report.reason
    assert queue_info(target, "cola_sms")["type"] == "classic"
    vhost = rabbit_api("GET", f"/vhosts/{quote(target.vhost, safe='')}").json()
    # 3.10 ignores a vhost's default queue type and shows "undefined".
    assert vhost.get("default_queue_type", "classic") in ("classic", "undefined")


def test_a_shared_queue_declared_with_arguments_is_reported(target: Target) -> None:
    rabbit_api("PUT", f"/vhosts/{quote(target.vhost, safe='')}").raise_for_status()
    rabbit_api(
        "PUT",
        f"/queues/{quote(target.vhost, safe='')}/correos",
        json={"durable": True, "arguments": {"x-max-length": 10}},
    ).raise_for_status()
    with pytest.raises(SetupError, match="correos.*argument-free"):
        run(target.settings())


def test_wrong_admin_credentials_are_a_clear_error(target: Target) -> None:
    with pytest.raises(SetupError, match="admin credentials"):
        run(target.settings(rabbitmq_admin_password=SecretStr("not-the-password")))


def test_an_unreachable_api_is_a_clear_error(target: Target) -> None:
    settings = target.settings(rabbitmq_api_url="http://127.0.0.1:9/api", rabbitmq_setup_timeout=1.0)
    with pytest.raises(SetupError, match="did not answer"):
        run(settings)


def test_roles_without_a_password_are_skipped_and_named(target: Target) -> None:
    report = run(target.settings(), target.credentials("sender", "monitor"))
    assert report.users == {"sender": target.user("sender"), "monitor": target.user("monitor")}
    assert report.skipped_roles == [
        "consumer_sms",
        "consumer_email",
        "consumer_logs",
        "consumer_webhooks",
        "dead_letters",
        "php",
    ]
    listed = rabbit_api("GET", f"/users/{quote(target.user('php'), safe='')}")
    assert listed.status_code == 404


def test_a_role_may_not_be_the_administrator(target: Target) -> None:
    admin = {"monitor": RoleCredentials(user=RABBIT_AUTH[0], password=SecretStr(target.password))}
    with pytest.raises(SetupError, match="names the administrator"):
        run(target.settings(), admin)
    # The administrator's password was not touched.
    assert rabbit_api("GET", "/overview").status_code == 200


def test_a_changed_password_is_applied_on_the_next_run(target: Target) -> None:
    run(target.settings(), target.credentials("monitor"))
    old = target.url("monitor")
    pika.BlockingConnection(pika.URLParameters(old)).close()
    rotated = Target(vhost=target.vhost, tag=target.tag, password=uuid.uuid4().hex)
    run(rotated.settings(), rotated.credentials("monitor"))
    pika.BlockingConnection(pika.URLParameters(rotated.url("monitor"))).close()
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        pika.BlockingConnection(pika.URLParameters(old))


def test_the_command_line_exits_zero_and_logs_the_result(target: Target) -> None:
    env = dict(
        os.environ,
        RABBITMQ_API_URL=RABBIT_API,
        RABBITMQ_ADMIN_USER=RABBIT_AUTH[0],
        RABBITMQ_ADMIN_PASSWORD=RABBIT_AUTH[1],
    )
    for role in ROLES:
        env[f"RABBITMQ_{role.upper()}_USER"] = target.user(role)
        env[f"RABBITMQ_{role.upper()}_PASSWORD"] = target.password
    command = [sys.executable, "-m", "cartero_common", "rabbitmq-setup", "--vhost", target.vhost]
    command += ["--definitions", str(DEFINITIONS)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rabbitmq topology applied" in result.stdout
    assert target.password not in result.stdout + result.stderr
    pika.BlockingConnection(pika.URLParameters(target.url("consumer_email"))).close()
    bad = subprocess.run(
        command, env={**env, "RABBITMQ_ADMIN_PASSWORD": "wrong"}, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "admin credentials" in bad.stdout


@pytest.mark.parametrize(
    ("queue_type", "version", "unlimited"),
    [("quorum", (4, 1, 0), True), ("quorum", (3, 13, 7), False), ("classic", (4, 1, 0), False)],
)
def test_dead_letters_are_never_dropped_for_a_delivery_limit(
    queue_type: str, version: tuple[int, ...], unlimited: bool
) -> None:
    """A DLQ has nowhere to dead-letter to, and each listing returns what it read: RabbitMQ 4's
    default limit of 20 deliveries would drop a dead letter after 20 looks. Classic queues and
    3.x quorum queues have no such limit, and a key they do not take would void the policy."""
    (dlq,) = [p for p in load_definitions(DEFINITIONS).policies if p.name == "cartero-dlq"]
    definition = dlq.definition_for(queue_type, version)
    assert definition["max-length"] == 1000000 and definition["overflow"] == "drop-head"
    assert ("delivery-limit" in definition) == unlimited
    if unlimited:
        assert definition["delivery-limit"] == -1
    for policy in load_definitions(DEFINITIONS).policies:
        assert "delivery-limit" not in policy.definition, policy.name  # would void it on classic queues


def test_versions_and_definitions_parse() -> None:
    assert parse_version("4.1.0-rc.1") == (4, 1, 0)
    assert parse_version("3.10.8") == (3, 10, 8)
    definitions = load_definitions(DEFINITIONS)
    # The queue type is CARTERO_QUEUE_TYPE's: the file must not suggest otherwise.
    assert "default_queue_type" not in Path(DEFINITIONS).read_text()
    shared = [q for q in definitions.queues if q.name in ("cola_sms", "correos", "logs")]
    assert len(shared) == 3 and all(q.durable and not q.arguments for q in shared)


def test_the_definitions_hold_no_users_or_passwords() -> None:
    text = Path(DEFINITIONS).read_text()
    assert '"users"' not in text and "password" not in text


def test_every_role_is_defined_and_only_the_php_role_configures_a_shared_queue() -> None:
    roles = {role.role: role for role in load_definitions(DEFINITIONS).roles}
    assert tuple(roles) == ROLES
    for name, role in roles.items():
        assert not role.tags, f"{name} has management tags"
        for shared in ("cola_sms", "correos", "logs"):
            configures = re.fullmatch(role.configure, shared) is not None
            assert configures == (name == "php"), f"{name} configure on {shared}"
        assert ".*" not in role.permissions().values(), name


def test_two_roles_may_not_share_a_user(target: Target) -> None:
    shared = RoleCredentials(user=target.user("sender"), password=SecretStr(target.password))
    with pytest.raises(SetupError, match="both name the user"):
        run(target.settings(), {"sender": shared, "monitor": shared})


def test_a_user_outside_the_roles_is_named(target: Target, caplog: pytest.LogCaptureFixture) -> None:
    """The one application user of older versions keeps its rights until removed: the setup says so."""
    run(target.settings(), target.credentials("sender"))
    stray = target.user("old-app")
    vhost = quote(target.vhost, safe="")
    try:
        rabbit_api("PUT", f"/users/{quote(stray, safe='')}", json={"password": target.password, "tags": ""})
        everything = {"configure": ".*", "write": ".*", "read": ".*"}
        rabbit_api("PUT", f"/permissions/{vhost}/{quote(stray, safe='')}", json=everything).raise_for_status()
        with caplog.at_level("WARNING", logger="cartero_common.amqp.setup"):
            report = run(target.settings(), target.credentials("sender"))
        assert report.other_users == [stray]
        assert any(getattr(r, "user", None) == stray for r in caplog.records)
    finally:
        rabbit_api("DELETE", f"/users/{quote(stray, safe='')}")


def test_the_route_exchanges_are_bound_each_to_its_one_queue(target: Target) -> None:
    report = run(target.settings())
    assert report.exchanges == [route_exchange(queue) for queue in SHARED_QUEUES]
    vhost = quote(target.vhost, safe="")
    for queue in SHARED_QUEUES:
        exchange = rabbit_api("GET", f"/exchanges/{vhost}/{quote(route_exchange(queue), safe='')}").json()
        assert (exchange["type"], exchange["durable"]) == ("direct", True)
        bindings = rabbit_api("GET", f"/exchanges/{vhost}/{quote(route_exchange(queue), safe='')}/bindings/source")
        assert [(b["destination"], b["routing_key"]) for b in bindings.json()] == [(queue, queue)]
    run(target.settings())  # again: nothing doubles
    bindings = rabbit_api("GET", f"/exchanges/{vhost}/cartero.logs/bindings/source").json()
    assert len(bindings) == 1
