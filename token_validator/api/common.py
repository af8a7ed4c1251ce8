"""What every router shares: path and query parameters (no NUL in any), pages, the audit call."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request
from sqlalchemy.orm import Session

from cartero_common.http import Problem
from token_validator import audit
from token_validator.deps import Actor
from token_validator.moment import Moment
from token_validator.repository.pages import PageOf

Id = Annotated[int, Path(ge=1, le=2**62)]
PageNo = Annotated[int, Query(ge=1, le=10**6)]
PerPage = Annotated[int, Query(ge=1, le=200)]
Instant = Annotated[datetime | None, Query(description="ISO-8601; UTC when it has no offset.")]


async def no_nul_in_query(request: Request) -> None:
    """Every route's query parameters (`q`, `actor`, `prefix`…), checked in one place: PostgreSQL
    text cannot hold NUL, so one (`%00`) is a 422 here rather than a 500 from the database."""
    bad = [name for name, value in request.query_params.multi_items() if "\x00" in name + value]
    if bad:
        raise Problem(
            422,
            "invalid_request",
            "The request has invalid fields.",
            errors=[
                {"field": name.replace("\x00", "\\x00"), "message": "must not contain NUL (\\x00) characters"}
                for name in dict.fromkeys(bad)
            ],
        )


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
