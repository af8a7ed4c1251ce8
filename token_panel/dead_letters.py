"""The dead_letters service, seen from the panel: counts, listings, replay and discard, with
DEAD_LETTERS_KEY. The panel never holds a broker credential."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from token_panel.admin_api import ApiError, ApiUnavailable

SERVICE = "dead letters service"


@dataclass(frozen=True)
class Done:
    """What a replay or discard moved. `stopped` is the service's word when the broker stopped
    confirming part-way (503 `replay_unconfirmed`): `ids` moved, the rest stayed in the DLQ."""

    ids: list[str]
    not_found: list[str]
    stopped: str | None = None


class DeadLetters:
    def __init__(
        self, url: str, key: str, *, timeout: float = 10.0, action_timeout: float = 300.0, transport: Any = None
    ) -> None:
        # A replay waits for the broker's confirm of each message: a DLQ of thousands takes
        # longer than any listing, and giving up early would leave it moving, unaudited.
        self._action_timeout = action_timeout
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/") + "/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        body, status = await self._send(method, path, **kwargs)
        return _checked(body, status)

    async def _send(self, method: str, path: str, **kwargs: Any) -> tuple[Any, int]:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(SERVICE, type(exc).__name__) from None
        try:
            return response.json(), response.status_code
        except ValueError:
            raise ApiUnavailable(SERVICE, f"HTTP {response.status_code} without JSON") from None

    async def counts(self) -> dict[str, int]:
        found: dict[str, int] = await self._call("GET", "/dead-letters")
        return found

    async def listing(self, queue: str, limit: int = 200) -> list[dict[str, Any]]:
        found = await self._call("GET", f"/dead-letters/{queue}", params={"limit": limit})
        return list(found["messages"])

    async def act(self, queue: str, action: str, body: dict[str, Any]) -> Done:
        path = f"/dead-letters/{queue}/{action}"
        found, status = await self._send("POST", path, json=body, timeout=self._action_timeout)
        if status == 503 and isinstance(found, dict) and found.get("code") == "replay_unconfirmed":
            # Not an outage: some messages moved before the broker stopped, and they must be told.
            return Done(_ids(found.get("ids")), [], str(found.get("detail") or "The broker stopped confirming."))
        done = _checked(found, status)
        return Done(_ids(done.get("ids")), _ids(done.get("not_found")))


def _checked(body: Any, status: int) -> Any:
    if status >= 500 or status == 401:
        raise ApiUnavailable(SERVICE, f"HTTP {status}")
    if status >= 400:
        raise ApiError(status, body if isinstance(body, dict) else {})
    return body


def _ids(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise ApiUnavailable(SERVICE, "an answer without its list of ids")
    return list(value)
