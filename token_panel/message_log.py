"""The message log, read through consumer_logs' `GET /v1/events` (oldest first, `since` only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from cartero_common.wire import Evento
from token_panel.admin_api import ApiError, ApiUnavailable

QUEUES = ("cola_sms", "correos")
EVENTS = tuple(evento.value for evento in Evento)
_META = ("seq", "stored_at", "readable")
# Fields that say what a message was about, in the order a summary shows them.
_SUMMARY = ("telefono", "destinatario", "asunto", "contenedor", "replicas", "motivo", "error")


class MessageLog:
    def __init__(self, url: str, read_key: str, *, timeout: float = 5.0, transport: Any = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {read_key}"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def events(
        self,
        *,
        message_id: str | None = None,
        evento: str | None = None,
        cola: str | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"id": message_id, "evento": evento, "cola": cola, "limit": limit}
        if since is not None:
            params["since"] = since.astimezone(UTC).isoformat()
        try:
            response = await self._client.get("/v1/events", params={k: v for k, v in params.items() if v})
        except httpx.HTTPError as exc:
            raise ApiUnavailable("message log", type(exc).__name__) from None
        try:
            body = response.json()
        except ValueError:
            raise ApiUnavailable("message log", f"HTTP {response.status_code} without JSON") from None
        if response.status_code >= 500:
            raise ApiUnavailable("message log", f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ApiError(response.status_code, body if isinstance(body, dict) else {})
        if not isinstance(body, list):
            raise ApiUnavailable("message log", "an answer that is not a list of events")
        return [event for event in body if isinstance(event, dict)]


def stored_at(event: dict[str, Any]) -> datetime | None:
    try:
        value = datetime.fromisoformat(str(event.get("stored_at")))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    # Where the next page starts (`since` and the last `seq` already shown), if there is one.
    next_since: datetime | None
    next_after: int | None


def page_of(
    fetched: list[dict[str, Any]], *, fetched_limit: int, per_page: int, after: int | None, until: datetime | None
) -> EventPage:
    """One page from what `since` brought: skip what an earlier page showed, stop at `until`."""
    shown: list[dict[str, Any]] = []
    more = len(fetched) >= fetched_limit
    for event in fetched:
        seq = event.get("seq")
        if after is not None and isinstance(seq, int) and seq <= after:
            continue
        when = stored_at(event)
        if until is not None and when is not None and when > until:
            more = False
            break
        if len(shown) == per_page:
            more = True
            break
        shown.append(event)
    if not more or not shown:
        return EventPage(shown, None, None)
    last = shown[-1]
    return EventPage(shown, stored_at(last), last.get("seq") if isinstance(last.get("seq"), int) else None)


def summary(event: dict[str, Any]) -> str:
    """A few words on what the event is about; the raw text of an unreadable one."""
    if not event.get("readable", True):
        return str(event.get("raw") or "")[:120]
    parts = [f"{key}: {event[key]}" for key in _SUMMARY if event.get(key) not in (None, "")]
    return " · ".join(parts)[:200]


def fields(event: dict[str, Any]) -> list[tuple[str, str]]:
    """Every field of the event as published, for the timeline; the storage bookkeeping left out."""
    return [(str(k), "" if v is None else str(v)) for k, v in event.items() if k not in _META]
