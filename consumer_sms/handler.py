"""One SMS off the queue: parse, send, then report `consumido` on `logs`."""

from __future__ import annotations

import json

from cartero_common.amqp import ConfirmedPublisher
from cartero_common.clock import Clock, fecha
from cartero_common.consumer import Delivery, Handler
from cartero_common.metrics import CONSUMER_MESSAGES
from cartero_common.schemas import QUEUE_LOGS, SmsMessage, consumed_event
from consumer_sms.providers import SmsProvider


def make_handler(provider: SmsProvider, *, clock: Clock, timezone: str) -> Handler:
    def handle(delivery: Delivery, publisher: ConfirmedPublisher) -> None:
        payload = json.loads(delivery.body)
        sms = SmsMessage.model_validate(payload)
        provider.send(sms)
        now = clock()
        event = consumed_event(payload, queue=delivery.queue, fecha_consumo=fecha(now, timezone))
        publisher.publish(QUEUE_LOGS, event, message_id=sms.id, now=now)
        CONSUMER_MESSAGES.labels(delivery.queue, "consumido").inc()

    return handle
