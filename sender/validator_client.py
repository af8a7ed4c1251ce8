"""The token validator, seen from the sender: one pooled keep-alive HTTP client, bounded waits.

aiohttp rather than httpx: this call is on every request's path, and httpx's client cost about
60 % of the sender's CPU per request (py-spy, `make bench`); aiohttp's costs a fraction of it.

Anything but a clear answer within `timeout` seconds (down, slow, refusing our credential,
answering nonsense) is `ValidatorUnavailable`, and the sender fails closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

log = logging.getLogger(__name__)


class ValidatorUnavailable(Exception):
    """No decision could be had from the validator."""


@dataclass(frozen=True)
class Verdict:
    """The validator's answer to `POST /v1/validate` (DESIGN §6)."""

    allowed: bool
    code: str
    token_id: int | None
    kind: str | None
    prefix: str | None
    limit: int | None
    remaining: int | None
    reset_in: int | None
    usage_id: str | None
    idempotency: str | None  # new | replay | retry | in_progress | mismatch
    stored_response: dict[str, Any] | None

    @classmethod
    def parse(cls, body: Any) -> Verdict:
        try:
            claim = body.get("idempotency") or {}
            return cls(
                allowed=bool(body["allowed"]),
                code=str(body["code"]),
                token_id=body.get("token_id"),
                kind=body.get("kind"),
                prefix=body.get("prefix"),
                limit=body.get("limit"),
                remaining=body.get("remaining"),
                reset_in=body.get("reset_in"),
                usage_id=body.get("usage_id"),
                idempotency=claim.get("outcome"),
                stored_response=claim.get("response"),
            )
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValidatorUnavailable(f"unexpected answer from the validator: {exc!r}") from None


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ValidatorClient:
    def __init__(self, url: str, service_key: str, *, timeout: float = 2.0) -> None:
        self.timeout = timeout
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {service_key}"}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop it belongs to.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=200, keepalive_timeout=60),
            )
        return self._session

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        try:
            # aiohttp bounds the exchange too; this also bounds reading the body.
            async with asyncio.timeout(self.timeout):
                async with self._client().request(method, self.url + path, json=body) as response:
                    return Answer(response.status, await response.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ValidatorUnavailable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None

    async def _post(self, path: str, body: dict[str, Any] | None = None) -> Answer:
        return await self._request("POST", path, body)

    async def validate(
        self,
        *,
        token: str,
        action: str,
        request_id: str,
        client_ip: str | None,
        idempotency: dict[str, Any] | None = None,
    ) -> Verdict:
        body: dict[str, Any] = {"token": token, "action": action, "request_id": request_id, "client_ip": client_ip}
        if idempotency is not None:
            body["idempotency"] = idempotency
        response = await self._post("/v1/validate", body)
        if response.status_code != 200:
            # Never echo its body: it could quote what we sent.
            raise ValidatorUnavailable(f"the validator answered {response.status_code}")
        try:
            return Verdict.parse(response.json())
        except ValueError:
            raise ValidatorUnavailable("the validator answered something that is not JSON") from None

    async def refund(self, usage_id: str) -> bool:
        """Give back a counted use; False (and a log line) if the validator could not be told."""
        try:
            response = await self._post(f"/v1/usage/{usage_id}/refund")
        except ValidatorUnavailable as exc:
            log.error("refund failed: the use stays counted", extra={"usage_id": usage_id, "error": str(exc)})
            return False
        if response.status_code != 200:
            log.error("refund refused", extra={"usage_id": usage_id, "status": response.status_code})
        return response.status_code == 200

    async def confirm(self, usage_id: str) -> None:
        """Best effort: an unconfirmed key is retried safely by the next request with it."""
        try:
            response = await self._post(f"/v1/usage/{usage_id}/confirm")
            if response.status_code != 200:
                log.warning("idempotency confirm refused", extra={"usage_id": usage_id, "status": response.status_code})
        except ValidatorUnavailable as exc:
            log.warning("idempotency confirm failed", extra={"usage_id": usage_id, "error": str(exc)})

    async def ping(self) -> bool:
        try:
            response = await self._request("GET", "/readyz")
        except ValidatorUnavailable:
            return False
        return response.status_code == 200

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
