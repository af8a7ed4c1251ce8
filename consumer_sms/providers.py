"""SMS providers: where a message goes once it leaves the queue."""

from __future__ import annotations

import logging
from typing import Protocol

from cartero_common.schemas import SmsMessage

log = logging.getLogger("consumer_sms.provider")


class SmsProvider(Protocol):
    def send(self, sms: SmsMessage) -> None: ...


class LogProvider:
    """Writes the SMS to the log instead of a carrier: the embedded default."""

    def send(self, sms: SmsMessage) -> None:
        log.info("sms sent", extra={"id": sms.id, "telefono": sms.telefono, "chars": len(sms.mensaje)})
