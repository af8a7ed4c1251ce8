"""consumer_webhooks's two loops on the real broker, POSTing to real receivers started here; the
endpoints are handed to the loops directly (the validator's directory is tested in
test_service.py)."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from standardwebhooks.webhooks import Webhook

from cartero_common.amqp.topology import RetryPolicy, parse_delays
from cartero_common.callback_urls import CallbackHostUnresolved, IpAddress, Resolver, callback_addresses
from cartero_common.clock import system_clock
from cartero_common.consume import ConsumerLoop
from cartero_common.webhook_wire import EVENT_TYPES, Notification
from consumer_webhooks.endpoints import Endpoint
from consumer_webhooks.handlers import deliver, fan_out, webhook_id
from tests.consumer_logs.support import READ_AUTH, serve_consumer_logs
from tests.consumer_webhooks.support import SECRET, Receiver, certificate_for, signature_by_hand
from tests.consumers import publish, running, sms, start_consumer, wait_consuming
from tests.support import drain, isolated_vhost, queue_depth, stop_process, wait_until

pytestmark = pytest.mark.integration


class Directory:
    """The owners' endpoints, as the validator would list them."""

    def __init__(self, endpoints: dict[str, list[Endpoint]]) -> None:
        self.by_owner = endpoints

    def endpoints(self, owner_ref: str) -> Sequence[Endpoint]:
        return [e for e in self.by_owner.get(owner_ref, []) if e.enabled]


def endpoint(id: int, url: str, events: Sequence[str] = EVENT_TYPES) -> Endpoint:
    return Endpoint(id=id, url=url, events=tuple(events), secret=SECRET)


@contextmanager
def webhooks(
    directory: Directory,
    *,
    delays: str = "200ms,200ms",
    allow_private: bool = True,
    workers: int = 4,
    timeout: float = 2.0,
    resolve: Resolver = socket.getaddrinfo,
    verify: ssl.SSLContext | bool = True,
) -> Iterator[str]:
    """The fan-out loop and `workers` delivery loops on a vhost of their own; yields its URL."""
    parsed = parse_delays(delays)
    policy = RetryPolicy(max_attempts=len(parsed) + 1, delays=parsed)
    client = httpx.Client(timeout=timeout, verify=verify)

    def check(url: str) -> list[IpAddress]:
        return callback_addresses(url, allow_private=allow_private, resolve=resolve)

    handler = deliver(
        directory,
        client=client,
        check_url=check,
        transient_url_errors=(CallbackHostUnresolved,),
        max_attempts=policy.max_attempts,
        timeout=timeout,
    )
    with isolated_vhost("cartero-webhooks") as url, ExitStack() as stack:
        loops = [
            ConsumerLoop(
                url=url,
                queue="webhooks",
                handler=fan_out(directory, system_clock),
                report_to=None,
                declares=("webhook_deliveries",),
            )
        ]
        loops += [
            ConsumerLoop(
                url=url, queue="webhook_deliveries", handler=handler, report_to=None, prefetch=1, policy=policy
            )
            for _ in range(workers)
        ]
        for loop in loops:
            stack.enter_context(running(loop))
        yield url
    client.close()


def notify(url: str, owner_ref: str, type: str, n: int = 1) -> Notification:
    note = Notification(
        owner_ref=owner_ref,
        type=type,
        message_id=f"m-{type}-{n}",
        event_id=f"evt_{type}_{n}_{time.monotonic_ns()}",
        timestamp=datetime.now(UTC).isoformat(),
        data={"message_id": f"m-{type}-{n}", "queue": "cola_sms"},
    )
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        props = pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=note.event_id)
        connection.channel().basic_publish("", "webhooks", json.dumps(note.model_dump()).encode(), props)
    finally:
        connection.close()
    return note


def received(receiver: Receiver, count: int, *, timeout: float = 15, ok: bool = True) -> None:
    got: Callable[[], list[object]] = receiver.delivered if ok else receiver.got  # type: ignore[assignment]
    wait_until(lambda: len(got()) >= count, timeout=timeout, what=f"{count} webhook(s)")


def test_each_event_type_arrives_signed() -> None:
    with Receiver() as receiver:
        with webhooks(Directory({"application:1": [endpoint(11, receiver.url)]})) as url:
            notes = [notify(url, "application:1", kind) for kind in EVENT_TYPES]
            received(receiver, 3)
            time.sleep(0.3)
    got = receiver.delivered()
    assert len(got) == 3
    by_type = {r.payload["type"]: r for r in got}
    assert set(by_type) == set(EVENT_TYPES)
    for note in notes:
        request = by_type[note.type]
        headers = request.headers
        assert headers["webhook-id"] == webhook_id(note.event_id, 11)
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
        assert request.payload == {"type": note.type, "timestamp": note.timestamp, "data": note.data}
        by_hand = signature_by_hand(SECRET, headers["webhook-id"], headers["webhook-timestamp"], request.body)
        assert headers["webhook-signature"] == by_hand
        assert Webhook(SECRET).verify(request.body, headers) == request.payload
        wrong = Webhook("whsec_" + "QUJD" * 8)
        with pytest.raises(Exception, match="signature"):
            wrong.verify(request.body, headers)


def test_a_receiver_that_answered_500_sees_the_same_webhook_id_again() -> None:
    with Receiver([500]) as receiver:
        with webhooks(Directory({"group:2": [endpoint(21, receiver.url)]})) as url:
            notify(url, "group:2", "message.sent")
            received(receiver, 1)
    first, second = receiver.got()
    assert (first.status, second.status) == (500, 200)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    for request in (first, second):
        assert Webhook(SECRET).verify(request.body, request.headers)


def test_only_subscribed_endpoints_of_the_owner_get_an_event() -> None:
    with Receiver() as sent_only, Receiver() as everything, Receiver() as other_owner:
        directory = Directory(
            {
                "application:3": [
                    endpoint(31, sent_only.url, ["message.sent"]),
                    endpoint(32, everything.url),
                    Endpoint(id=33, url=other_owner.url, events=EVENT_TYPES, secret=SECRET, enabled=False),
                ],
                "application:4": [endpoint(41, other_owner.url)],
            }
        )
        with webhooks(directory) as url:
            notify(url, "application:3", "message.failed")
            notify(url, "application:3", "message.retrying")
            notify(url, "application:3", "message.sent")
            received(everything, 3)
            time.sleep(1.0)
    assert [r.payload["type"] for r in sent_only.got()] == ["message.sent"]
    assert other_owner.got() == []


def test_retries_exhausted_go_to_the_dead_letter_queue() -> None:
    with Receiver([503] * 10) as receiver:
        with webhooks(Directory({"user:5": [endpoint(51, receiver.url)]}), delays="100ms,100ms") as url:
            notify(url, "user:5", "message.failed")
            wait_until(lambda: queue_depth(url, "webhook_deliveries.dlq") == 1, timeout=15, what="dead letter")
            [(props, body)] = drain(url, "webhook_deliveries.dlq")
    assert len(receiver.got()) == 3, "the first attempt and one per delay"
    assert len({r.headers["webhook-id"] for r in receiver.got()}) == 1
    assert "receiver answered 503" in props.headers["x-cartero-reason"]
    assert json.loads(body)["endpoint_id"] == 51


def test_a_private_address_is_refused_at_delivery_unless_allowed() -> None:
    with Receiver() as receiver:
        directory = Directory({"application:6": [endpoint(61, receiver.url)]})
        with webhooks(directory, allow_private=False) as url:
            notify(url, "application:6", "message.sent")
            wait_until(lambda: queue_depth(url, "webhook_deliveries.dlq") == 1, timeout=15, what="refused delivery")
            [(props, _)] = drain(url, "webhook_deliveries.dlq")
        assert receiver.got() == [], "a refused URL is never called"
        assert "callback URL refused" in props.headers["x-cartero-reason"]
        with webhooks(directory, allow_private=True) as url:
            notify(url, "application:6", "message.sent")
            received(receiver, 1)


def test_a_receiver_down_for_a_minute_gets_its_events_once_back() -> None:
    receiver = Receiver()
    directory = Directory({"application:7": [endpoint(71, receiver.url)]})
    with webhooks(directory, delays=",".join(["10s"] * 9)) as url:
        notes = [notify(url, "application:7", kind) for kind in EVENT_TYPES]
        time.sleep(60)
        assert queue_depth(url, "webhook_deliveries.dlq") == 0
        with receiver:
            received(receiver, 3, timeout=30)
    assert {r.headers["webhook-id"] for r in receiver.delivered()} == {webhook_id(n.event_id, 71) for n in notes}


def test_a_slow_receiver_does_not_slow_message_delivery(tmp_path: Path) -> None:
    """consumer_sms and consumer_logs as their own processes, the receiver taking 3 s per
    webhook: every SMS is still `consumido` at once, and the webhooks follow at their pace."""
    ids = [f"slow-{n}" for n in range(8)]
    with Receiver(delay=3.0) as receiver:
        directory = Directory({"application:8": [endpoint(81, receiver.url)]})
        with webhooks(directory, workers=2) as url, serve_consumer_logs(url, tmp_path) as served:
            sms_env = {
                "AMQP_URL": url,
                "DATABASE_URL": f"sqlite:///{tmp_path}/consumer_sms.db",
                "CONSUMER_SMS_METRICS_PORT": "0",
            }
            process = start_consumer("consumer_sms", tmp_path / "consumer_sms.log", **sms_env)
            try:
                wait_consuming(url, "cola_sms", process)
                started = time.monotonic()
                for message_id in ids:
                    publish(url, "logs", {**sms(message_id), "evento": "enviado", "owner_ref": "application:8"})
                    publish(url, "cola_sms", sms(message_id))

                def consumed() -> int:
                    answer = httpx.get(f"{served.url}/v1/events", params={"evento": "consumido"}, headers=READ_AUTH)
                    return len([e for e in answer.json() if e["id"] in ids])

                wait_until(lambda: consumed() == len(ids), timeout=10, what="every SMS consumido")
                took = time.monotonic() - started
                assert len(receiver.got()) < len(ids), "the webhooks are still on their way"
                received(receiver, len(ids), timeout=60)
            finally:
                stop_process(process)
    assert took < 6.0, f"{took:.1f} s for {len(ids)} SMS beside a receiver that takes 3 s a webhook"
    assert {r.payload["data"]["message_id"] for r in receiver.delivered()} == set(ids)


def answering(*rounds: str) -> Resolver:
    """A resolver answering `rounds[0]` to its first lookup, `rounds[1]` to the next… (the last
    one from then on), for any name: a rebinding DNS server with a TTL of zero."""
    calls: list[str] = []

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        address = rounds[min(len(calls), len(rounds) - 1)]
        calls.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return resolve


def test_the_post_goes_to_the_address_that_was_checked() -> None:
    """`localhost` resolves (by the system) to 127.0.0.1; the check's lookup answered 127.0.0.2
    first. A POST that looked the name up again would land on the 127.0.0.1 receiver."""
    with Receiver(host="127.0.0.2") as checked, Receiver(port=checked.port) as elsewhere:
        url = f"http://localhost:{checked.port}/hook"
        resolve = answering("127.0.0.2", "127.0.0.1")
        with webhooks(Directory({"application:9": [endpoint(91, url)]}), resolve=resolve) as amqp:
            notify(amqp, "application:9", "message.sent")
            received(checked, 1)
            time.sleep(0.3)
    assert len(checked.delivered()) == 1
    assert elsewhere.got() == []


def test_the_host_header_is_the_endpoints_host() -> None:
    # A name no resolver but the check's knows: the POST cannot have looked it up itself.
    with Receiver() as receiver:
        url = f"http://hooks.rebind.invalid:{receiver.port}/hook"
        directory = Directory({"application:10": [endpoint(101, url)]})
        with webhooks(directory, resolve=answering("127.0.0.1")) as amqp:
            notify(amqp, "application:10", "message.sent")
            received(receiver, 1)
    [request] = receiver.delivered()
    assert request.headers["host"] == f"hooks.rebind.invalid:{receiver.port}"
    assert Webhook(SECRET).verify(request.body, request.headers)


def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_deadline_and_retried() -> None:
    """Its answer comes a byte every 0.5 s (about 20 s for all of it): each read is well within
    the 1.5 s timeout, the whole is not. The attempt ends at 1.5 s and is tried again."""
    with Receiver(trickle=0.5) as receiver:
        directory = Directory({"group:11": [endpoint(111, receiver.url)]})
        with webhooks(directory, delays="200ms", timeout=1.5) as amqp:
            notify(amqp, "group:11", "message.sent")
            received(receiver, 2, timeout=20, ok=False)
    first, second = receiver.got()
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.at - first.at < 1.5 + 0.2 + 1.5, f"the retry came {second.at - first.at:.1f} s after"


def test_https_to_the_checked_address_still_checks_the_certificate_for_the_host(tmp_path: Path) -> None:
    """The connection goes to 127.0.0.1, but the TLS server name and the certificate check are
    for the endpoint's host: a certificate for another name is refused."""
    server_context, ca = certificate_for("hooks.test", tmp_path)
    trusting = ssl.create_default_context(cafile=str(ca))
    with Receiver(tls=server_context) as receiver:
        good = endpoint(121, f"https://hooks.test:{receiver.port}/hook")
        wrong = endpoint(122, f"https://other.test:{receiver.port}/hook")
        directory = Directory({"application:12": [good], "application:13": [wrong]})
        with webhooks(directory, delays="100ms", resolve=answering("127.0.0.1"), verify=trusting) as amqp:
            notify(amqp, "application:12", "message.sent")
            received(receiver, 1)
            notify(amqp, "application:13", "message.sent")
            wait_until(lambda: queue_depth(amqp, "webhook_deliveries.dlq") == 1, timeout=15, what="refused certificate")
            [(props, body)] = drain(amqp, "webhook_deliveries.dlq")
    [request] = receiver.got()
    assert request.headers["host"] == f"hooks.test:{receiver.port}"
    assert "hooks.test" in receiver.server_names
    assert json.loads(body)["endpoint_id"] == 122
    assert "POST failed: ConnectError" in props.headers["x-cartero-reason"]


def test_only_the_start_of_a_long_answer_is_read() -> None:
    """The receiver's 200 comes with a body that never ends: the worker reads a few KB, not up
    to the 3 s deadline, so one worker takes the next delivery at once."""
    with Receiver(endless=True) as receiver:
        with webhooks(Directory({"user:14": [endpoint(141, receiver.url)]}), workers=1, timeout=3.0) as amqp:
            notify(amqp, "user:14", "message.sent", 1)
            notify(amqp, "user:14", "message.sent", 2)
            received(receiver, 2)
            time.sleep(0.3)
    first, second = receiver.got()
    assert second.at - first.at < 1.5, f"the next delivery came {second.at - first.at:.1f} s after"
