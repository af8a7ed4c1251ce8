"""Admin API: webhook endpoints of applications, groups and users (the secret shown when made
and when renewed, never listed)."""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from cartero_common.callback_urls import CallbackUrlRefused, check_callback_url
from cartero_common.http import Problem
from cartero_common.redact import public_url
from token_validator.api.common import Id, audited
from token_validator.config import Settings
from token_validator.deps import AdminDep, DbDep, MomentDep, ZoneDep
from token_validator.models import WebhookEndpoint
from token_validator.repository import webhooks
from token_validator.repository.tokens import owner_exists
from token_validator.schemas import WebhookCreate, WebhookList, WebhookPublic, WebhookUpdate, WebhookWithSecret
from token_validator.token_strings import Kind
from token_validator.views import local

router = APIRouter(tags=["admin: webhooks"])

_REFUSED: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such owner or endpoint (`not_found`)."},
    422: {"description": "An invalid field, or a URL that may not be called back (`callback_url_refused`)."},
}


def webhook_public(endpoint: WebhookEndpoint, owner_name: str, zone: ZoneInfo) -> WebhookPublic:
    owner = webhooks.owner_id(endpoint)
    return WebhookPublic(
        id=endpoint.id,
        owner_type=endpoint.owner_type,
        owner_id=owner,
        owner_ref=f"{endpoint.owner_type}:{owner}",
        owner_name=owner_name,
        url=endpoint.url,
        events=endpoint.events,
        description=endpoint.description,
        enabled=endpoint.enabled,
        created_at=local(endpoint.created_at, zone),
        updated_at=local(endpoint.updated_at, zone),
    )


def checked_url(request: Request, url: str) -> str:
    """`url` if it may be called back: its shape first (any setting), then where it resolves."""
    settings: Settings = request.app.state.settings
    try:
        check_callback_url(url, allow_private=True)
    except CallbackUrlRefused as refused:
        raise Problem(
            422, "invalid_request", f"url: {refused.reason}.", errors=[{"field": "url", "message": refused.reason}]
        ) from None
    if not settings.webhooks_allow_private_urls:
        try:
            check_callback_url(url, allow_private=False)
        except CallbackUrlRefused as refused:
            raise Problem(
                422,
                "callback_url_refused",
                f"The URL may not be called back: {refused.reason}.",
                reason=refused.reason,
                errors=[{"field": "url", "message": refused.reason}],
            ) from None
    return url


def _found(session: Session, endpoint_id: int) -> tuple[WebhookEndpoint, str]:
    found = webhooks.get(session, endpoint_id)
    if found is None:
        raise Problem(404, "not_found", f"No webhook endpoint with id {endpoint_id}.")
    return found


def _with_secret(endpoint: WebhookEndpoint, owner_name: str, zone: ZoneInfo) -> WebhookWithSecret:
    return WebhookWithSecret(**webhook_public(endpoint, owner_name, zone).model_dump(), secret=endpoint.secret)


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookWithSecret,
    summary="Register a webhook endpoint; its secret is shown here and on renewal only",
    responses=_REFUSED,
)
def create_webhook(
    body: WebhookCreate, request: Request, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep
) -> Any:
    url = checked_url(request, body.url)
    with db.begin() as session:
        if not owner_exists(session, body.owner_type, body.owner_id):
            raise Problem(404, "not_found", f"No {body.owner_type} with id {body.owner_id}.")
        endpoint = webhooks.create(
            session,
            owner_type=body.owner_type,
            owner_id=body.owner_id,
            url=url,
            events=list(body.events),
            description=body.description or None,
            now=moment.now,
        )
        owner_ref = f"{body.owner_type}:{body.owner_id}"
        details = {"owner_ref": owner_ref, "url": public_url(url), "events": list(body.events)}
        audited(session, actor, moment, "webhook.create", "webhook", endpoint.id, details)
        found, owner_name = _found(session, endpoint.id)
        return _with_secret(found, owner_name, zone)


@router.get("/webhooks", response_model=WebhookList, summary="List webhook endpoints (without their secrets)")
def list_webhooks(
    _: AdminDep,
    db: DbDep,
    zone: ZoneDep,
    owner_type: Kind | None = None,
    owner_id: Annotated[int | None, Query(ge=1, le=2**62, description="With `owner_type`: that owner's.")] = None,
) -> Any:
    if owner_id is not None and owner_type is None:
        raise Problem(422, "invalid_request", "owner_id needs owner_type (application, group or user).")
    with db.begin() as session:
        rows = webhooks.list_endpoints(session, owner_type=owner_type, owner_id=owner_id)
        return WebhookList(items=[webhook_public(endpoint, name, zone) for endpoint, name in rows])


@router.get("/webhooks/{endpoint_id}", response_model=WebhookPublic, summary="One webhook endpoint", responses=_REFUSED)
def get_webhook(endpoint_id: Id, _: AdminDep, db: DbDep, zone: ZoneDep) -> Any:
    with db.begin() as session:
        return webhook_public(*_found(session, endpoint_id), zone)


@router.patch(
    "/webhooks/{endpoint_id}",
    response_model=WebhookPublic,
    summary="Change a webhook endpoint's URL, events, description, or enable/disable it",
    responses=_REFUSED,
)
def update_webhook(
    endpoint_id: Id,
    body: WebhookUpdate,
    request: Request,
    actor: AdminDep,
    db: DbDep,
    moment: MomentDep,
    zone: ZoneDep,
) -> Any:
    given = body.model_fields_set
    for field in ("url", "events", "enabled"):
        if field in given and getattr(body, field) is None:
            raise Problem(
                422, "invalid_request", f"{field} cannot be null.", errors=[{"field": field, "message": "not null"}]
            )
    url = checked_url(request, body.url) if body.url is not None else None
    with db.begin() as session:
        endpoint, owner_name = _found(session, endpoint_id)
        changes: dict[str, Any] = {}
        if url is not None and url != endpoint.url:
            changes["url"] = {"from": public_url(endpoint.url), "to": public_url(url)}
            endpoint.url = url
        if body.events is not None and list(body.events) != endpoint.events:
            changes["events"] = {"from": endpoint.events, "to": list(body.events)}
            endpoint.events = list(body.events)
        description = body.description or None
        if "description" in given and description != endpoint.description:
            changes["description"] = {"from": endpoint.description, "to": description}
            endpoint.description = description
        if body.enabled is not None and body.enabled != endpoint.enabled:
            changes["enabled"] = body.enabled
            endpoint.enabled = body.enabled
        if changes:
            endpoint.updated_at = moment.now
            audited(session, actor, moment, "webhook.update", "webhook", endpoint_id, changes)
        session.flush()
        return webhook_public(endpoint, owner_name, zone)


@router.delete("/webhooks/{endpoint_id}", status_code=204, summary="Delete a webhook endpoint", responses=_REFUSED)
def delete_webhook(endpoint_id: Id, actor: AdminDep, db: DbDep, moment: MomentDep) -> Response:
    with db.begin() as session:
        endpoint, _ = _found(session, endpoint_id)
        owner_ref = f"{endpoint.owner_type}:{webhooks.owner_id(endpoint)}"
        webhooks.remove(session, endpoint_id)
        audited(
            session,
            actor,
            moment,
            "webhook.delete",
            "webhook",
            endpoint_id,
            {"owner_ref": owner_ref, "url": public_url(endpoint.url)},
        )
    return Response(status_code=204)


@router.post(
    "/webhooks/{endpoint_id}/secret",
    response_model=WebhookWithSecret,
    summary="Give a webhook endpoint a new secret; the old one stops signing at once",
    responses=_REFUSED,
)
def renew_secret(endpoint_id: Id, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    with db.begin() as session:
        endpoint, owner_name = _found(session, endpoint_id)
        endpoint.secret = webhooks.new_secret()
        endpoint.updated_at = moment.now
        audited(session, actor, moment, "webhook.secret", "webhook", endpoint_id, {"url": public_url(endpoint.url)})
        session.flush()
        return _with_secret(endpoint, owner_name, zone)
