"""`rabbitmq-setup` with CARTERO_QUEUE_TYPE=quorum against the machine's real RabbitMQ (3.10):
what it refuses and why, what it builds when allowed, and a poison message ending in the DLQ
through the broker's delivery limit."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from urllib.parse import quote

import pika
import pika.exceptions
import pytest

from cartero_common.amqp import RetryPolicy, parse_delays
from cartero_common.amqp.setup import SetupError, load_definitions, parse_version, run
from cartero_common.consume import ConsumerLoop
from tests.consumers import FAST_DELAYS, FailsOnce, running, sms
from tests.deploy import test_rabbitmq_setup as plain
from tests.deploy.test_rabbitmq_setup import DEFINITIONS, Target, queue_info
from tests.support import RABBIT_API, RABBIT_AUTH, RABBIT_HOST, ROOT, rabbit_api, wait_until

target = plain.target  # the same fixture: a vhost and role users of the test's own, removed afterwards

pytestmark = pytest.mark.integration

OURS = (
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
)


def broker_version() -> tuple[int, ...]:
    return parse_version(str(rabbit_api("GET", "/overview").json()["rabbitmq_version"]))


def probe_vhosts() -> list[str]:
    return [v["name"] for v in rabbit_api("GET", "/vhosts").json() if v["name"].startswith("cartero-setup-probe-")]


def admin_url(target: Target) -> str:
    return f"amqp://{RABBIT_AUTH[0]}:{RABBIT_AUTH[1]}@{RABBIT_HOST}:5672/{quote(target.vhost, safe='')}"


def with_policy(target: Target, name: str) -> dict[str, object] | None:
    """The queue's details once the management API shows its policy (with the next stats update)."""
    info = queue_info(target, name)
    return info if info["policy"] else None


def delivery_limit() -> int:
    (policy,) = [p for p in load_definitions(DEFINITIONS).policies if p.name == "cartero-cola_sms"]
    return int(policy.on_quorum["delivery-limit"])


def test_quorum_is_refused_where_the_php_declares_would_get_a_406(target: Target) -> None:
    if broker_version() >= (3, 11, 16):
        pytest.skip("this broker may accept argument-free redeclares; the refusal is for older ones")
    before = set(probe_vhosts())
    with pytest.raises(SetupError) as refused:
        run(target.settings(cartero_queue_type="quorum"))
    text = str(refused.value)
    assert "answered an argument-free redeclare of a quorum queue with 406" in text  # the probe ran
    assert "3.13.4" in text and "3.11.16" in text and "CARTERO_PHP_DECLARES=false" in text
    # Refused before anything was made, and the probe's scratch vhost is gone.
    assert rabbit_api("GET", f"/vhosts/{quote(target.vhost, safe='')}").status_code == 404
    assert set(probe_vhosts()) == before


def test_the_command_line_refuses_with_a_non_zero_exit_and_the_reason(target: Target) -> None:
    if broker_version() >= (3, 11, 16):
        pytest.skip("this broker may accept argument-free redeclares; the refusal is for older ones")
    env = dict(
        os.environ,
        RABBITMQ_API_URL=RABBIT_API,
        RABBITMQ_ADMIN_USER=RABBIT_AUTH[0],
        RABBITMQ_ADMIN_PASSWORD=RABBIT_AUTH[1],
        CARTERO_QUEUE_TYPE="quorum",
    )
    command = [sys.executable, "-m", "cartero_common", "rabbitmq-setup", "--vhost", target.vhost]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1
    assert "refusing CARTERO_QUEUE_TYPE=quorum" in result.stdout and "3.13.4" in result.stdout


def test_without_php_declares_every_queue_is_quorum_with_quorum_policies(target: Target) -> None:
    report = run(target.settings(cartero_queue_type="quorum", cartero_php_declares=False))
    assert report.queue_type == "quorum"
    assert report.queues == list(OURS)
    for name in OURS:
        assert queue_info(target, name)["type"] == "quorum", name
    for shared in ("cola_sms", "webhooks"):
        info = wait_until(functools.partial(with_policy, target, shared), timeout=15, what=f"{shared}'s policy")
        assert info["effective_policy_definition"] == {
            "dead-letter-exchange": "",
            "dead-letter-routing-key": f"{shared}.dlq",
            "delivery-limit": delivery_limit(),
            "dead-letter-strategy": "at-least-once",
            "overflow": "reject-publish",
        }
    # Running it again changes nothing; a PHP client's argument-free declare is what was given up.
    run(target.settings(cartero_queue_type="quorum", cartero_php_declares=False))
    if broker_version() < (3, 11, 16):
        connection = pika.BlockingConnection(pika.URLParameters(admin_url(target)))
        try:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
                connection.channel().queue_declare("cola_sms", durable=True, exclusive=False, auto_delete=False)
            assert refused.value.reply_code == 406
        finally:
            if connection.is_open:
                connection.close()


@pytest.mark.parametrize(("first", "then"), [("classic", "quorum"), ("quorum", "classic")])
def test_a_type_switch_over_existing_queues_is_refused(target: Target, first: str, then: str) -> None:
    run(target.settings(cartero_queue_type=first, cartero_php_declares=False))
    with pytest.raises(SetupError, match=f"already has {first} queues.*drain"):
        run(target.settings(cartero_queue_type=then, cartero_php_declares=False))
    assert queue_info(target, "cola_sms")["type"] == first


def test_a_poison_message_ends_in_the_dlq_after_the_delivery_limit(target: Target) -> None:
    """A message that kills every consumer that takes it (delivered, never acked, the connection
    dropped): our retry count never sees it, the quorum queue's delivery limit ends the loop and
    the policy's dead-lettering parks it, whole, in `cola_sms.dlq`."""
    run(target.settings(cartero_queue_type="quorum", cartero_php_declares=False))
    url = admin_url(target)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=2, message_id="poison")
        channel.basic_publish("", "cola_sms", b'{"id": "poison"}', properties, mandatory=True)
    finally:
        connection.close()
    deliveries = 0
    while deliveries <= delivery_limit() + 5:
        crashing = pika.BlockingConnection(pika.URLParameters(url))
        method, _, _ = crashing.channel().basic_get("cola_sms", auto_ack=False)
        crashing.close()  # as a consumer that died with the message in hand
        if method is None:
            break
        deliveries += 1
    # Delivered once, then redelivered up to the limit; the next return dead-letters it.
    assert deliveries == delivery_limit() + 1
    dead = pika.BlockingConnection(pika.URLParameters(url))
    try:
        method, properties, body = wait_until(
            lambda: (got := dead.channel().basic_get("cola_sms.dlq", auto_ack=True))[0] and got,
            timeout=15,
            what="the dead letter",
        )
    finally:
        dead.close()
    assert body == b'{"id": "poison"}' and properties.message_id == "poison"
    (death,) = properties.headers["x-death"]
    assert death["queue"] == "cola_sms" and death["reason"] == "delivery_limit"


def test_a_consumer_role_retries_through_the_setups_quorum_queues(target: Target) -> None:
    """The setup's queues and the consumer's own declares agree (no 406) under the consumer's
    role, and a failed first attempt comes back through a quorum retry queue and is consumed."""
    handler = FailsOnce()
    run(target.settings(cartero_queue_type="quorum", cartero_php_declares=False), target.credentials("consumer_sms"))
    url = target.url("consumer_sms")
    policy = RetryPolicy(max_attempts=3, delays=parse_delays(FAST_DELAYS))
    loop = ConsumerLoop(url=url, queue="cola_sms", handler=handler, policy=policy, name="q", queue_type="quorum")
    with running(loop):
        connection = pika.BlockingConnection(pika.URLParameters(admin_url(target)))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            properties = pika.BasicProperties(delivery_mode=2, message_id="r-1")
            channel.basic_publish("", "cola_sms", json.dumps(sms("r-1")).encode(), properties, mandatory=True)
        finally:
            connection.close()
        assert handler.done.wait(15), handler.attempts
    assert handler.attempts == [("r-1", 1), ("r-1", 2)]
    assert queue_info(target, "cola_sms.retry.200ms")["type"] == "quorum"
