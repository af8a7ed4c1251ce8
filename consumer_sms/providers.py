"""SMS providers: where a message goes once it leaves the queue.

`send` returns once the provider accepted the SMS (with the name of the provider that took it,
for the `consumido` event), or raises `TransientFailure` (try again later) or
`PermanentFailure` (never will work). `batchable` says whether sending one again is
harmless, which lets the consumer record its dedupe ledger once per batch instead of once per
message (see `cartero_common.consume.delivery`).
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

from cartero_common.consume import Failover, PermanentFailure, TransientFailure
from cartero_common.redact import public_url
from cartero_common.wire import SmsMessage

log = logging.getLogger("consumer_sms.provider")


class SmsProvider(Protocol):
    batchable: bool

    def send(self, sms: SmsMessage) -> str | None: ...


class LogProvider:
    """Writes the SMS to the log instead of a carrier: the embedded default."""

    batchable = True
    name = "log"

    def send(self, sms: SmsMessage) -> str:
        log.info("sms sent", extra={"id": sms.id, "telefono": sms.telefono, "chars": len(sms.mensaje)})
        return self.name


class HttpGateway:
    """POSTs `{"id", "telefono", "mensaje"}` as JSON to an SMS gateway.

    2xx: sent. 408, 429 and 5xx, timeouts, refused connections: transient. Other 4xx: the
    gateway will never take this message, permanent. The message id goes along as
    `Idempotency-Key`, so a gateway that honours it drops the one resend our dedupe cannot
    rule out (a crash between its 2xx and our ledger commit).
    """

    batchable = False

    def __init__(self, url: str, *, timeout: float = 10.0, token: str | None = None) -> None:
        headers = {"User-Agent": "cartero-consumer-sms"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.url = url
        self.name = public_url(url)  # the metric label and the event's `proveedor`: no secrets
        self.client = httpx.Client(timeout=timeout, headers=headers)

    def send(self, sms: SmsMessage) -> str:
        body = {"id": sms.id, "telefono": sms.telefono, "mensaje": sms.mensaje}
        try:
            response = self.client.post(self.url, json=body, headers={"Idempotency-Key": sms.id})
        except httpx.TimeoutException as exc:
            raise TransientFailure(f"SMS gateway timed out: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise TransientFailure(f"SMS gateway unreachable: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            log.info(
                "sms sent",
                extra={"id": sms.id, "telefono": sms.telefono, "gateway": self.name, "gateway_status": status},
            )
            return self.name
        detail = f"SMS gateway answered {status}: {response.text[:200]}"
        if status in (408, 429) or status >= 500:
            raise TransientFailure(detail)
        raise PermanentFailure(detail)

    def close(self) -> None:
        self.client.close()


class FailoverGateways:
    """The configured gateways in order, each behind its circuit breaker: a transient failure
    on one tries the next within the same attempt (docs/failover.md)."""

    batchable = False

    def __init__(self, failover: Failover[HttpGateway]) -> None:
        self.failover = failover

    def send(self, sms: SmsMessage) -> str:
        return self.failover.send(lambda gateway: gateway.send(sms))

    def close(self) -> None:
        for gateway in self.failover.providers:
            gateway.close()
