"""One email off the queue: a real address, a real MIME message, then the provider."""

from __future__ import annotations

from cartero_common.clock import Clock
from cartero_common.consume import DEFAULT_MAX_BODY, BatchHandler, Ledger, PermanentFailure, sending_handler
from cartero_common.wire import EmailMessage, normalize_email
from consumer_email.message import build_email
from consumer_email.providers import EmailProvider


def make_handler(
    provider: EmailProvider, *, sender: str, ledger: Ledger, clock: Clock, max_body: int = DEFAULT_MAX_BODY
) -> BatchHandler:
    def send(email: EmailMessage) -> str | None:
        try:
            address = normalize_email(email.destinatario)
        except ValueError as exc:
            raise PermanentFailure(f"invalid recipient address: {exc}") from None
        mail = build_email(email.model_copy(update={"destinatario": address}), sender=sender, now=clock())
        return provider.send(email.id, mail)

    return sending_handler(model=EmailMessage, send=send, ledger=ledger, clock=clock, max_body=max_body)
