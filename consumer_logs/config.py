from __future__ import annotations

from pydantic import Field

from cartero_common.settings import ConsumerSettings


class Settings(ConsumerSettings):
    database_url: str = "sqlite:///var/consumer_logs.db"
    consumer_logs_host: str = "127.0.0.1"
    consumer_logs_port: int = 8003
    consumer_logs_prefetch: int = Field(default=500, ge=1)
    # Every read of the message log presents it as a bearer token (the panel, the validator's
    # reconciliation, operators' scripts); `serve` refuses to start without one of 16+ characters.
    consumer_logs_read_key: str = ""
    # What the sender presents to `GET /v1/status/{id}`, and all it opens: one message's status,
    # for the owner its `enviado` event names. Unset, that route refuses every request.
    consumer_logs_status_key: str = ""
    # Whether an event keeps what the message said (the SMS text, the email's subject and body,
    # an unreadable body's text). Off, it never reaches the database: who it went to, when, and
    # what became of it are kept, not what it said.
    consumer_logs_store_content: bool = False
    # Hand each consumer event of a message whose sender named its owner to the `webhooks` queue,
    # for consumer_webhooks to deliver to that owner's endpoints (docs/webhooks.md). Off where no
    # consumer_webhooks runs, or the queue only grows.
    consumer_logs_webhooks: bool = True
