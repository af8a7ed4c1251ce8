"""`GET /v1/webhooks/endpoints`: an owner's enabled endpoints and their secrets, for the delivery
consumer alone (VALIDATOR_WEBHOOKS_KEY; the admin key does not open it, nor does this key open
anything else)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query

from cartero_common.http import Problem
from token_validator.deps import DbDep, WebhooksAuth
from token_validator.repository import webhooks
from token_validator.schemas import WebhookTarget, WebhookTargets

router = APIRouter(tags=["webhooks"])

_OWNER_REF = re.compile(r"(application|group|user):([1-9][0-9]{0,18})")


def parse_owner_ref(owner_ref: str | None) -> tuple[str, int]:
    found = _OWNER_REF.fullmatch(owner_ref or "")
    if found is None or int(found[2]) > 2**62:
        raise Problem(
            422,
            "invalid_request",
            "owner_ref must be <kind>:<id>, kind application, group or user (e.g. application:3).",
            errors=[{"field": "owner_ref", "message": "must be application:<id>, group:<id> or user:<id>"}],
        )
    return found[1], int(found[2])


@router.get(
    "/v1/webhooks/endpoints",
    response_model=WebhookTargets,
    dependencies=[WebhooksAuth],
    summary="An owner's enabled webhook endpoints, with their secrets (VALIDATOR_WEBHOOKS_KEY)",
)
def owner_endpoints(db: DbDep, owner_ref: Annotated[str | None, Query(max_length=40)] = None) -> Any:
    owner_type, owner_id = parse_owner_ref(owner_ref)
    with db.begin() as session:
        rows = webhooks.enabled_of(session, owner_type, owner_id)
        return WebhookTargets(
            items=[
                WebhookTarget(id=row.id, url=row.url, events=row.events, secret=row.secret, enabled=row.enabled)
                for row in rows
            ]
        )
