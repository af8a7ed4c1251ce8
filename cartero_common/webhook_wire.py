"""The webhook notifications consumer_logs hands to consumer_webhooks on the `webhooks` queue
(docs/webhooks.md, "Deliveries"): the queue names, the event types and the notification's shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cartero_common.wire import Evento

QUEUE_WEBHOOKS = "webhooks"
QUEUE_WEBHOOK_DELIVERIES = "webhook_deliveries"

MESSAGE_SENT = "message.sent"
MESSAGE_RETRYING = "message.retrying"
MESSAGE_FAILED = "message.failed"
EVENT_TYPES = (MESSAGE_SENT, MESSAGE_RETRYING, MESSAGE_FAILED)

# The consumer events an owner can be told about, and the type each becomes.
TYPE_OF_EVENTO = {
    Evento.CONSUMED.value: MESSAGE_SENT,
    Evento.RETRYING.value: MESSAGE_RETRYING,
    Evento.FAILED.value: MESSAGE_FAILED,
    Evento.REJECTED.value: MESSAGE_FAILED,
}


class Notification(BaseModel):
    """One event for one owner, before it is known which of the owner's endpoints want it."""

    model_config = ConfigDict(extra="ignore", strict=True)

    owner_ref: str = Field(min_length=3, max_length=200)
    type: str = Field(pattern=r"^message\.(sent|retrying|failed)$")
    message_id: str = Field(max_length=200)
    event_id: str = Field(min_length=1, max_length=100)
    timestamp: str
    data: dict[str, Any]


class WebhookDelivery(BaseModel):
    """One notification for one endpoint: what `webhook_deliveries` carries. The endpoint's URL
    and secret are not in it: they are looked up before each attempt, so a rotated secret or a
    changed URL applies at once, and no secret sits in a queue."""

    model_config = ConfigDict(extra="ignore", strict=True)

    endpoint_id: int
    owner_ref: str
    webhook_id: str
    type: str
    timestamp: str
    data: dict[str, Any]
