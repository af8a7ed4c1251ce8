"""The audit trail: who did what to which object, written in the same transaction as the change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from token_validator.models import AuditEvent

CLI_ACTOR = "cli"
# The actor of what nobody signed in did: a failed sign-in.
ANONYMOUS = "anonymous"


def record(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    target_type: str,
    target_id: object | None = None,
    details: dict[str, Any] | None = None,
    client_ip: str | None = None,
) -> None:
    """`action` is `<object>.<verb>`, e.g. `token.revoke`. `details` never holds a secret."""
    session.add(
        AuditEvent(
            at=at,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=None if target_id is None else str(target_id),
            details=details or {},
            client_ip=client_ip,
        )
    )
