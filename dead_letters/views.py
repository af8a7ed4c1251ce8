"""A dead letter as the API shows it: what the consumer wrote on it, and a preview of its body
with content dropped and addresses masked, as the message log's lists show an event."""

from __future__ import annotations

import json
from typing import Any

from cartero_common.consume.outcomes import ATTEMPT_HEADER
from cartero_common.consume.settle import FAILED_AT_HEADER, ORIGIN_HEADER, OUTCOME_HEADER, REASON_HEADER
from cartero_common.privacy import masked, masked_text, without_content
from dead_letters.broker import Held

PREVIEW_CHARS = 200


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def preview(body: bytes) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return masked_text(body.decode("utf-8", "replace"))[:PREVIEW_CHARS]
    if not isinstance(parsed, dict):
        return masked_text(body.decode("utf-8", "replace"))[:PREVIEW_CHARS]
    return json.dumps(masked(without_content(parsed)), ensure_ascii=False)[:PREVIEW_CHARS]


def public(held: Held, dlq: str) -> dict[str, Any]:
    headers = held.headers
    attempts = headers.get(ATTEMPT_HEADER)
    # A provider's refusal may quote the number or the address: masked as a list masks them.
    reason = _text(headers.get(REASON_HEADER))
    return {
        "id": held.id,
        "reason": None if reason is None else masked_text(reason),
        "outcome": _text(headers.get(OUTCOME_HEADER)),
        "attempts": attempts if isinstance(attempts, int) else None,
        "failed_at": _text(headers.get(FAILED_AT_HEADER)),
        "queue": _text(headers.get(ORIGIN_HEADER)) or dlq.removesuffix(".dlq"),
        "preview": preview(held.body),
    }
