"""A message's status and timeline, computed from its events (docs/status.md).

`queued` (only `enviado`), `retrying` (the latest is `reintento`), `failed` (the latest is
`fallido` or `rechazado`: dead-lettered), `sent` (a `consumido`: delivered, whatever came
before or after it). A message is shown only to the owner its `enviado` event names.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from consumer_logs.models import Event

STATUS_OF = {
    "enviado": "queued",
    "reintento": "retrying",
    "consumido": "sent",
    "fallido": "failed",
    "rechazado": "failed",
}


def _entry(event: Event) -> dict[str, Any]:
    payload = event.payload or {}
    stored_at = event.stored_at if event.stored_at.tzinfo else event.stored_at.replace(tzinfo=UTC)
    entry: dict[str, Any] = {
        "status": STATUS_OF[str(event.evento)],
        "evento": event.evento,
        "at": stored_at.isoformat(),
    }
    if event.evento == "consumido" and payload.get("proveedor"):
        entry["provider"] = payload["proveedor"]
    if event.evento == "reintento":
        entry["attempt"] = payload.get("intento")
        entry["next_try_at"] = payload.get("proximo_intento")
        entry["reason"] = payload.get("motivo")
    if event.evento in ("fallido", "rechazado"):
        entry["attempts"] = payload.get("intentos")
        entry["reason"] = payload.get("motivo")
        entry["dead_lettered"] = True
        entry["dlq"] = payload.get("dlq")
    return {key: value for key, value in entry.items() if value is not None}


def owned_by(events: list[Event], owner_ref: str) -> bool:
    return any(e.evento == "enviado" and (e.payload or {}).get("owner_ref") == owner_ref for e in events)


def message_status(message_id: str, events: list[Event]) -> dict[str, Any]:
    """The answer for a message whose events (oldest first) include its owner's `enviado`."""
    timeline = [_entry(e) for e in events if e.readable and e.evento in STATUS_OF]
    sent = [entry for entry in timeline if entry["status"] == "sent"]
    later = [entry for entry in timeline if entry["status"] in ("retrying", "failed")]
    current = sent[0] if sent else later[-1] if later else {"status": "queued"}
    queue = next((e.cola for e in events if e.evento == "enviado"), None)
    summary = {key: value for key, value in current.items() if key not in ("evento", "at")}
    return {"id": message_id, "queue": queue, **summary, "timeline": timeline}
