"""What `rabbitmq-setup` checks before it applies CARTERO_QUEUE_TYPE (docs/scaling-out.md).

Two things can make a queue type a broken deployment, and the setup refuses both:

- **A queue already of the other type.** A queue's type is fixed when it is created; every
  declare of the other type is answered 406, so consumers and senders would stop at start.
- **Quorum queues while PHP clients declare them argument-free** (`CARTERO_PHP_DECLARES=true`).
  `queue_declare('cola_sms', false, true, false, false)` carries no `x-queue-type`, and a broker
  compares that with a quorum queue as a request for a classic one (406) unless it is 3.13.4+
  (which compares it with the vhost's default queue type, set to quorum by the setup) or 3.11.16+
  with `quorum_queue.property_equivalence.relaxed_checks_on_redeclaration = true` in
  rabbitmq.conf. The configuration cannot be read through the management API, so the setup asks
  the broker itself: in a scratch vhost whose default is quorum it declares a quorum queue over
  AMQP, redeclares it exactly as PHP does, and sees whether the broker refuses. The version only
  shapes the message, and decides alone when no AMQP connection can be opened.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import pika
import pika.exceptions

from cartero_common.amqp.queue_type import CLASSIC, QUORUM, QueueType

log = logging.getLogger("cartero_common.rabbitmq_setup")

# The releases whose argument-free redeclare of a quorum queue matches (rabbitmq-server#11541,
# #12109: the vhost default; the relaxed check is a rabbitmq.conf setting from 3.11.16).
QUORUM_DEFAULT_SINCE = (3, 13, 4)
RELAXED_CHECKS_SINCE = (3, 11, 16)
RELAXED_SETTING = "quorum_queue.property_equivalence.relaxed_checks_on_redeclaration = true"


class QueueTypeRefused(Exception):
    """The queue type asked for would break a client's declares; the message says why and what to do."""


@dataclass(frozen=True)
class Verdict:
    queue_type: QueueType
    reason: str
    warning: str | None = None  # what an allowed combination gives up (logged)


def shown(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def check_no_type_switch(wanted: QueueType, existing: Mapping[str, str]) -> None:
    """Refuse when a lasting queue of the vhost has another type than `wanted`."""
    other = sorted(name for name, current in existing.items() if current != wanted)
    if not other:
        return
    current = existing[other[0]]
    listed = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
    raise QueueTypeRefused(
        f"CARTERO_QUEUE_TYPE={wanted} but the vhost already has {current} queues ({listed}); a queue's type "
        f"cannot change, and every {wanted} declare of them would be refused with 406. To keep them, set "
        f"CARTERO_QUEUE_TYPE={current}. To move to {wanted} queues: stop the senders, let the consumers drain "
        "the queues (and replay or discard the .dlq and .retry queues), delete the queues, run rabbitmq-setup "
        f"again with CARTERO_QUEUE_TYPE={wanted}, then start the services with the same value"
    )


def php_needs(version: tuple[int, ...]) -> str:
    """What this broker needs for the PHP clients' argument-free declares to match a quorum queue."""
    if version >= QUORUM_DEFAULT_SINCE:
        return (
            f"RabbitMQ {shown(version)} should take the vhost default (quorum) for an argument-free "
            "declare; check that the vhost's default queue type can be set"
        )
    if version >= RELAXED_CHECKS_SINCE:
        return f"set `{RELAXED_SETTING}` in rabbitmq.conf and restart the nodes, or upgrade to 3.13.4 or later"
    return (
        "upgrade to RabbitMQ 3.13.4 or later (argument-free declares take the vhost default, quorum), "
        f"or 3.11.16 or later with `{RELAXED_SETTING}` in rabbitmq.conf"
    )


def decide(
    wanted: QueueType,
    version: tuple[int, ...],
    existing: Mapping[str, str],
    *,
    php_declares: bool,
    redeclare_matches: bool | None,
) -> Verdict:
    """The vhost's queue type, or `QueueTypeRefused`. `redeclare_matches`: the probe's answer
    (an argument-free redeclare of a quorum queue went through), None when it could not run."""
    check_no_type_switch(wanted, existing)
    if wanted == CLASSIC:
        return Verdict(CLASSIC, "CARTERO_QUEUE_TYPE=classic: argument-free declares match on any version")
    if not php_declares:
        gives_up = None
        if not redeclare_matches:
            gives_up = (
                f"CARTERO_PHP_DECLARES=false: on RabbitMQ {shown(version)} a PHP client's argument-free "
                "queue_declare of a quorum queue would be refused with 406; only clients that pass "
                "x-queue-type (Cartero's own) may declare the queues"
            )
        return Verdict(QUORUM, "CARTERO_QUEUE_TYPE=quorum, PHP declares not required", gives_up)
    if redeclare_matches:
        return Verdict(QUORUM, f"RabbitMQ {shown(version)} accepts an argument-free redeclare of a quorum queue")
    if redeclare_matches is None and version >= QUORUM_DEFAULT_SINCE:
        return Verdict(QUORUM, f"RabbitMQ {shown(version)} applies the vhost default to argument-free declares")
    found = (
        "answered an argument-free redeclare of a quorum queue with 406 PRECONDITION_FAILED"
        if redeclare_matches is False
        else "could not be asked over AMQP whether it accepts an argument-free redeclare of a quorum queue"
    )
    raise QueueTypeRefused(
        f"refusing CARTERO_QUEUE_TYPE=quorum: RabbitMQ {shown(version)} {found}, which is what the PHP "
        "clients' queue_declare('cola_sms', false, true, false, false) sends, so they would fail. "
        f"To keep the PHP declares working: {php_needs(version)}. Otherwise keep CARTERO_QUEUE_TYPE=classic, "
        "or set CARTERO_PHP_DECLARES=false if no PHP client declares the queues"
    )


def probe_url(api_url: str, user: str, password: str, vhost: str, port: int) -> str:
    """The AMQP URL of the management API's host, as the administrator, on `vhost`."""
    host = urlsplit(api_url).hostname or "localhost"
    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{quote(vhost, safe='')}"


def redeclare_matches(url: str, *, timeout: float = 5.0) -> bool | None:
    """In `url`'s vhost (a scratch one the caller made, default type quorum): declare a quorum
    queue, redeclare it as the PHP clients do, and say whether the broker took it. None when no
    connection could be opened (the caller then goes by the version)."""
    params = pika.URLParameters(url)
    params.socket_timeout = timeout
    params.connection_attempts = 1
    try:
        connection = pika.BlockingConnection(params)
    except pika.exceptions.AMQPError as exc:
        log.warning("no AMQP connection for the queue type probe; deciding by version", extra={"error": repr(exc)})
        return None
    queue = f"cartero-setup-probe-{uuid.uuid4().hex[:8]}"
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": QUORUM})
        try:
            connection.channel().queue_declare(queue, durable=True, exclusive=False, auto_delete=False)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 406:
                raise
            return False
        return True
    finally:
        connection.close()  # the queue goes with the scratch vhost
