"""Where an owner's webhook endpoints come from: the validator's `GET /v1/webhooks/endpoints`,
each owner's answer kept for a few seconds (`EndpointDirectory` is what the handlers take)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError


class EndpointsUnavailable(Exception):
    """The endpoints could not be read now (the validator is down or answered oddly)."""


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    url: str
    events: tuple[str, ...]
    secret: str
    enabled: bool = True


class EndpointDirectory(Protocol):
    def endpoints(self, owner_ref: str) -> Sequence[Endpoint]:
        """The owner's enabled endpoints; raises `EndpointsUnavailable`."""
        ...


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[Endpoint]


@dataclass
class HttpEndpointDirectory:
    base_url: str
    key: str
    cache_seconds: float = 5.0
    timeout: float = 5.0
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._client = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=self.timeout)
        self._cache: dict[str, tuple[float, tuple[Endpoint, ...]]] = {}
        self._lock = threading.Lock()  # the delivery loops share one directory

    def endpoints(self, owner_ref: str) -> Sequence[Endpoint]:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(owner_ref)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            answer = self._client.get(
                "/v1/webhooks/endpoints",
                params={"owner_ref": owner_ref},
                headers={"Authorization": f"Bearer {self.key}"},
            )
        except httpx.HTTPError as exc:
            raise EndpointsUnavailable(f"validator unreachable: {exc!r}") from None
        if answer.status_code != 200:
            raise EndpointsUnavailable(f"validator answered {answer.status_code} for {owner_ref}")
        try:
            found = tuple(e for e in _Answer.model_validate_json(answer.content).items if e.enabled)
        except ValidationError as exc:
            raise EndpointsUnavailable(f"validator's answer unreadable: {exc.error_count()} error(s)") from None
        with self._lock:
            self._cache[owner_ref] = (now, found)
        return found

    def close(self) -> None:
        self._client.close()
