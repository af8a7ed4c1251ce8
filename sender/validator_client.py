"""The token validator, seen from the sender: one pooled keep-alive HTTP client, bounded waits.

aiohttp rather than httpx: this call is on every request's path, and httpx's client cost about
60 % of the sender's CPU per request (py-spy, `make bench`); aiohttp's costs a fraction of it.

Validations go in batches (`POST /v1/validate/batch`): one is sent at once when none is in flight,
and those that arrive while a request is in flight go together in the next one. Under load that
is one HTTP exchange, on each side, for many requests instead of one each, which was most of what
a decision cost the validator and a tenth of the sender's CPU (py-spy, `make bench`); idle, it adds
no wait. A validator without that endpoint (an older release) is asked one check at a time.

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

from sender.metrics import VALIDATOR_BATCH_SIZE

log = logging.getLogger(__name__)


class ValidatorUnavailable(Exception):
    """No decision could be had from the validator."""


@dataclass(frozen=True)
class Verdict:
    """The validator's answer to `POST /v1/validate` (docs/design.md §6)."""

    allowed: bool
    code: str
    token_id: int | None
    kind: str | None
    prefix: str | None
    owner_ref: str | None  # who sent it: `<kind>:<id>` of the token's owner
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
                owner_ref=body.get("owner_ref"),
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


@dataclass(frozen=True)
class _Queued:
    body: dict[str, Any]
    verdict: asyncio.Future[Verdict]


def _verdict_of(response: Answer) -> Verdict:
    if response.status_code != 200:
        # Never echo its body: it could quote what we sent.
        raise ValidatorUnavailable(f"the validator answered {response.status_code}")
    try:
        return Verdict.parse(response.json())
    except ValueError:
        raise ValidatorUnavailable("the validator answered something that is not JSON") from None


class ValidatorClient:
    def __init__(self, url: str, service_key: str, *, timeout: float = 2.0, max_batch: int = 128) -> None:
        self.timeout = timeout
        self.url = url.rstrip("/")
        self.max_batch = max_batch
        self._headers = {"Authorization": f"Bearer {service_key}"}
        self._session: aiohttp.ClientSession | None = None
        self._queue: list[_Queued] = []
        self._sending = False
        self._batch_endpoint = True  # off once the validator answers 404 there

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
        if not self._batch_endpoint:
            return _verdict_of(await self._post("/v1/validate", body))
        queued = _Queued(body, asyncio.get_running_loop().create_future())
        self._queue.append(queued)
        if not self._sending:
            self._sending = True
            # A task of its own: a caller that goes away must not take the others' answers with it.
            asyncio.get_running_loop().create_task(self._send_queued())
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(queued.verdict)
        except TimeoutError:
            raise ValidatorUnavailable(f"no answer within {self.timeout}s") from None

    async def _send_queued(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    verdicts = await self._validate_many([queued.body for queued in batch])
                except Exception as exc:  # noqa: BLE001 - each caller gets it as its own failure
                    failure = exc if isinstance(exc, ValidatorUnavailable) else ValidatorUnavailable(repr(exc))
                    for queued in batch:
                        if not queued.verdict.done():
                            queued.verdict.set_exception(failure)
                            queued.verdict.exception()  # retrieved: a caller that timed out is not an error
                    continue
                for queued, verdict in zip(batch, verdicts, strict=True):
                    if not queued.verdict.done():
                        queued.verdict.set_result(verdict)
        finally:
            self._sending = False

    async def validate_all(self, checks: list[dict[str, Any]]) -> list[Verdict | ValidatorUnavailable]:
        """The checks of one batch send (`sender.batch`), in its order: `max_batch` per exchange,
        one exchange after another, each with its own `timeout` (a thousand checks through the
        shared queue would wait behind each other inside one request's timeout). A chunk the
        validator did not answer is `ValidatorUnavailable` for each of its checks."""
        verdicts: list[Verdict | ValidatorUnavailable] = []
        for start in range(0, len(checks), self.max_batch):
            chunk = checks[start : start + self.max_batch]
            try:
                verdicts.extend(await self._validate_many(chunk))
            except ValidatorUnavailable as exc:
                verdicts.extend([exc] * len(chunk))
        return verdicts

    async def _validate_many(self, bodies: list[dict[str, Any]]) -> list[Verdict]:
        VALIDATOR_BATCH_SIZE.observe(len(bodies))
        response = await self._post("/v1/validate/batch", {"checks": bodies})
        if response.status_code == 404:
            log.warning("the validator has no /v1/validate/batch (an older release): validating one at a time")
            self._batch_endpoint = False
            answers = await asyncio.gather(*(self._post("/v1/validate", body) for body in bodies))
            return [_verdict_of(answer) for answer in answers]
        if response.status_code != 200:
            raise ValidatorUnavailable(f"the validator answered {response.status_code}")
        try:
            answers = response.json()["answers"]
        except (ValueError, KeyError, TypeError):
            raise ValidatorUnavailable("the validator answered something that is not a batch of answers") from None
        if not isinstance(answers, list) or len(answers) != len(bodies):
            raise ValidatorUnavailable("the validator answered a batch of the wrong size")
        return [Verdict.parse(answer) for answer in answers]

    async def _tell(
        self, usage_id: str, action: str, body: dict[str, Any] | None = None, *, level: int = logging.ERROR
    ) -> bool:
        """`POST /v1/usage/{usage_id}/{action}`: True once the validator took it; otherwise False
        and one log line at `level` saying why."""
        try:
            response = await self._post(f"/v1/usage/{usage_id}/{action}", body)
        except ValidatorUnavailable as exc:
            log.log(level, f"usage {action} failed", extra={"usage_id": usage_id, "error": str(exc)})
            return False
        if response.status_code != 200:
            log.log(level, f"usage {action} refused", extra={"usage_id": usage_id, "status": response.status_code})
        return response.status_code == 200

    async def refund(self, usage_id: str) -> bool:
        """Give back a counted use; if the validator cannot be told, the use stays counted."""
        return await self._tell(usage_id, "refund")

    async def confirm(self, usage_id: str) -> bool:
        """The broker confirmed the use's message: its Idempotency-Key replays the 202, and a use
        kept unconfirmed is settled. Best effort: an unconfirmed key is retried safely by the next
        request with it, and an unconfirmed use is settled by reconciliation."""
        return await self._tell(usage_id, "confirm", level=logging.WARNING)

    async def mark_unconfirmed(self, usage_id: str, message_id: str) -> bool:
        """The broker may hold the use's message: keep the use until it is settled."""
        return await self._tell(usage_id, "unconfirmed", {"message_id": message_id})

    async def identify(self, token: str) -> tuple[str, str | None]:
        """`(code, owner_ref)` for `token`, nothing spent (`POST /v1/identify`)."""
        response = await self._post("/v1/identify", {"token": token})
        if response.status_code != 200:
            raise ValidatorUnavailable(f"the validator answered {response.status_code}")
        try:
            body = response.json()
            code, owner_ref = str(body["code"]), body.get("owner_ref")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ValidatorUnavailable("the validator answered something that is not an identity") from None
        if code == "ok" and not isinstance(owner_ref, str):
            raise ValidatorUnavailable("the validator named no owner for a usable token")
        return code, owner_ref

    async def ping(self) -> bool:
        try:
            response = await self._request("GET", "/readyz")
        except ValidatorUnavailable:
            return False
        return response.status_code == 200

    async def close(self) -> None:
        for queued in self._queue:
            if not queued.verdict.done():
                queued.verdict.set_exception(ValidatorUnavailable("the sender is shutting down"))
        self._queue, self._sending = [], False
        if self._session is not None:
            await self._session.close()
            self._session = None
