"""One SMS off the queue: a real phone number, then the provider (dedupe and events are the
shared loop's and `cartero_common.consume.delivery`'s)."""

from __future__ import annotations

from cartero_common.clock import Clock
from cartero_common.consume import DEFAULT_MAX_BODY, BatchHandler, Ledger, PermanentFailure, sending_handler
from cartero_common.wire import SmsMessage, normalize_phone
from consumer_sms.providers import SmsProvider


def make_handler(
    provider: SmsProvider, *, ledger: Ledger, clock: Clock, max_body: int = DEFAULT_MAX_BODY
) -> BatchHandler:
    def send(sms: SmsMessage) -> str | None:
        try:
            telefono = normalize_phone(sms.telefono)
        except ValueError as exc:
            raise PermanentFailure(f"invalid phone number: {exc}") from None
        return provider.send(sms if telefono == sms.telefono else sms.model_copy(update={"telefono": telefono}))

    return sending_handler(model=SmsMessage, send=send, ledger=ledger, clock=clock, max_body=max_body)
