from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cartero_common.db import new_metadata

# The lengths of the event's text columns; what comes off the queue is cut to them.
ID_LENGTH = 200
EVENTO_LENGTH = 40
COLA_LENGTH = 200


class Base(DeclarativeBase):
    metadata = new_metadata()


class Event(Base):
    """One event as it came off `logs`; `payload` is the JSON object, `raw` an unreadable body."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    message_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    evento: Mapped[str | None] = mapped_column(String(EVENTO_LENGTH))
    cola: Mapped[str | None] = mapped_column(String(COLA_LENGTH))
    stored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    readable: Mapped[bool]
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raw: Mapped[str | None] = mapped_column(Text)
    # sha256 of the AMQP message id and the body: the same event delivered twice (the broker
    # redelivers after a crash before the ack) is stored once. Unique; NULL for old rows.
    digest: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_events_message_id", "message_id"),
        Index("ix_events_evento_stored_at", "evento", "stored_at"),
        Index("ix_events_cola_stored_at", "cola", "stored_at"),
        Index("ix_events_stored_at", "stored_at"),
        Index("ux_events_digest", "digest", unique=True),
    )
