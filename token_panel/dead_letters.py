"""The dead_letters service, seen from the panel: counts, listings, replay and discard, with
DEAD_LETTERS_KEY. The panel never holds a broker credential."""

from __future__ import annotations

from typing import Any

import httpx

from token_panel.admin_api import ApiError, ApiUnavailable

SERVICE = "dead letters service"


class DeadLetters:
    def __init__(self, url: str, key: str, *, timeout: float = 10.0, transport: Any = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/") + "/v1",
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiUnavailable(SERVICE, type(exc).__name__) from None
        try:
            body = response.json()
        except ValueError:
            raise ApiUnavailable(SERVICE, f"HTTP {response.status_code} without JSON") from None
        if response.status_code >= 500 or response.status_code == 401:
            raise ApiUnavailable(SERVICE, f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ApiError(response.status_code, body if isinstance(body, dict) else {})
        return body

    async def counts(self) -> dict[str, int]:
        found: dict[str, int] = await self._call("GET", "/dead-letters")
        return found

    async def listing(self, queue: str, limit: int = 200) -> list[dict[str, Any]]:
        found = await self._call("GET", f"/dead-letters/{queue}", params={"limit": limit})
        return list(found["messages"])

    async def act(self, queue: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        done: dict[str, Any] = await self._call("POST", f"/dead-letters/{queue}/{action}", json=body)
        return done
