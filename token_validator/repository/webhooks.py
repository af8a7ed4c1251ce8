"""Webhook endpoints: an owner's URLs, the events each wants, and the secret that signs them."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from sqlalchemy import Select, delete, func, select
from sqlalchemy.orm import Session

from token_validator.models import Application, Group, User, WebhookEndpoint
from token_validator.repository.pages import affected

OWNER_COLUMN = {"application": "application_id", "group": "group_id", "user": "user_id"}
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """The Standard Webhooks form: `whsec_` and the base64 of random bytes (24 at least)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def owner_id(endpoint: WebhookEndpoint) -> int:
    return int(endpoint.application_id or endpoint.group_id or endpoint.user_id or 0)


def _with_owner_name() -> Select[WebhookEndpoint, str]:
    name = func.coalesce(Application.name, Group.name, User.name).label("owner_name")
    return (
        select(WebhookEndpoint, name)
        .outerjoin(Application, Application.id == WebhookEndpoint.application_id)
        .outerjoin(Group, Group.id == WebhookEndpoint.group_id)
        .outerjoin(User, User.id == WebhookEndpoint.user_id)
    )


def create(
    session: Session,
    *,
    owner_type: str,
    owner_id: int,
    url: str,
    events: list[str],
    description: str | None,
    now: datetime,
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        owner_type=owner_type,
        url=url,
        events=events,
        description=description,
        secret=new_secret(),
        enabled=True,
        created_at=now,
        updated_at=now,
        **{OWNER_COLUMN[owner_type]: owner_id},
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def get(session: Session, endpoint_id: int) -> tuple[WebhookEndpoint, str] | None:
    row = session.execute(_with_owner_name().where(WebhookEndpoint.id == endpoint_id)).one_or_none()
    return None if row is None else (row[0], row[1])


def list_endpoints(
    session: Session, *, owner_type: str | None, owner_id: int | None
) -> list[tuple[WebhookEndpoint, str]]:
    """(endpoint, owner name) rows, oldest first; of one kind of owner, or of one owner."""
    query = _with_owner_name().order_by(WebhookEndpoint.id)
    if owner_type is not None:
        query = query.where(WebhookEndpoint.owner_type == owner_type)
        if owner_id is not None:
            query = query.where(getattr(WebhookEndpoint, OWNER_COLUMN[owner_type]) == owner_id)
    return [(row[0], row[1]) for row in session.execute(query)]


def enabled_of(session: Session, owner_type: str, owner_id: int) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(
        getattr(WebhookEndpoint, OWNER_COLUMN[owner_type]) == owner_id, WebhookEndpoint.enabled.is_(True)
    )
    return list(session.execute(query.order_by(WebhookEndpoint.id)).scalars())


def count_of(session: Session, owner_type: str, owner_id: int) -> int:
    column = getattr(WebhookEndpoint, OWNER_COLUMN[owner_type])
    return int(session.execute(select(func.count(WebhookEndpoint.id)).where(column == owner_id)).scalar_one())


def remove(session: Session, endpoint_id: int) -> bool:
    return bool(affected(session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))))
