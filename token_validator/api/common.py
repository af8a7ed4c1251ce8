"""What every admin router shares: path and query parameters, pages, the audit call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from sqlalchemy.orm import Session

from token_validator import audit
from token_validator.deps import Actor
from token_validator.moment import Moment
from token_validator.repository.pages import PageOf

Id = Annotated[int, Path(ge=1, le=2**62)]
PageNo = Annotated[int, Query(ge=1, le=10**6)]
PerPage = Annotated[int, Query(ge=1, le=200)]
Instant = Annotated[datetime | None, Query(description="ISO-8601; UTC when it has no offset.")]


def paged(found: PageOf[Any], items: list[Any]) -> dict[str, Any]:
    return {"items": items, "total": found.total, "page": found.page, "per_page": found.per_page}


def audited(
    session: Session,
    actor: Actor,
    moment: Moment,
    action: str,
    target_type: str,
    target_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    """Record `action` by the acting admin, in the request's transaction."""
    audit.record(
        session,
        at=moment.now,
        actor=actor.name,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
        client_ip=actor.client_ip,
    )
