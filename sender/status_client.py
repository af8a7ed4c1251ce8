"""The message log's status endpoint and the validator's identify, seen from the sender.

Both are asked with bounded waits; anything but a clear answer in time is `StatusUnavailable`
and the caller gets a 503 `status_unavailable`, never a 500.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp


class StatusUnavailable(Exception):
    """The message log did not answer clearly in time."""


@dataclass(frozen=True)
class Found:
    """The log's answer: the status document, or None for `message_not_found`."""

    status: dict[str, Any] | None


class StatusClient:
    def __init__(self, url: str, status_key: str, *, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {status_key}"}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop it belongs to.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=60),
            )
        return self._session

    async def status(self, message_id: str, owner_ref: str) -> Found:
        path = f"/v1/status/{quote(message_id, safe='')}"
        try:
            async with asyncio.timeout(self.timeout):
                async with self._client().get(self.url + path, params={"owner_ref": owner_ref}) as response:
                    if response.status == 404:
                        body = await response.json(content_type=None)
                        # A 404 of another kind (an older log without this route) is no answer.
                        if isinstance(body, dict) and body.get("code") == "message_not_found":
                            return Found(None)
                        raise StatusUnavailable("the message log has no status route")
                    if response.status != 200:
                        raise StatusUnavailable(f"the message log answered {response.status}")
                    found = await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise StatusUnavailable(type(exc).__name__) from None
        if not isinstance(found, dict):
            raise StatusUnavailable("the message log answered something that is not a status")
        return Found(found)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
