"""Webhook endpoints: every endpoint with its owner, an owner's "Add webhook" form (the secret
shown once), enable/disable, a new secret and deletion (each behind a confirmation page)."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from token_panel.admin_api import PLURAL, AdminApi, ApiError
from token_panel.deps import Admin, AdminDep, ApiDep, FormDep, require_admin
from token_panel.forms import KINDS, WEBHOOK_EVENTS, Invalid, WebhookForm, text
from token_panel.routes.tokens import SentForms
from token_panel.web import ok, redirect, render

router = APIRouter(dependencies=[Depends(require_admin)])

Id = Annotated[int, Path(ge=1, le=2**62)]
OwnerType = Annotated[str, Query(pattern="^(application|group|user)$")]
OwnerId = Annotated[int, Query(ge=1, le=2**62)]
# The API's field names, as the form calls them.
_FIELDS = {"url": "url", "events": "events", "description": "description"}


async def _owner(api: AdminApi, admin: Admin, kind: str, owner_id: int) -> dict[str, Any]:
    owner: dict[str, Any] = await api.call("GET", f"/{PLURAL[kind]}/{owner_id}", actor=admin.name)
    return owner


def _form_page(
    request: Request,
    kind: str,
    owner: dict[str, Any],
    typed: WebhookForm,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "kind": kind,
        "plural": PLURAL[kind],
        "owner": owner,
        "typed": typed,
        "errors": errors or {},
        "events": WEBHOOK_EVENTS,
        "nonce": secrets.token_urlsafe(16),
    }
    return render(request, "webhook_new.html", context, status=status)


def api_errors(exc: ApiError) -> dict[str, str]:
    """The validator's refusal as errors beside the form's fields; a refused URL says why."""
    if exc.code == "callback_url_refused":
        reason = str(exc.body.get("reason") or exc.detail)
        return {"url": f"This URL is refused: {reason}."}
    fields = {_FIELDS.get(k.split(".")[0], "form"): v for k, v in exc.field_errors().items()}
    return fields or {"form": exc.detail}


@router.get("/webhooks", summary="Every webhook endpoint, with its owner")
async def list_webhooks(request: Request, admin: AdminDep, api: ApiDep) -> Response:
    found = await api.call("GET", "/webhooks", actor=admin.name)
    return render(request, "webhooks.html", {"webhooks": found["items"], "plural": PLURAL})


@router.get("/webhooks/new", summary="The form for a new webhook endpoint of an owner")
async def new_webhook(
    request: Request, admin: AdminDep, api: ApiDep, owner_type: OwnerType, owner_id: OwnerId
) -> Response:
    owner = await _owner(api, admin, owner_type, owner_id)
    return _form_page(request, owner_type, owner, WebhookForm())


@router.post("/webhooks", summary="Register a webhook endpoint and show its secret, this once")
async def create_webhook(request: Request, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    kind, raw_id = text(form, "owner_type"), text(form, "owner_id")
    if kind not in KINDS or not raw_id.isdigit() or not 1 <= int(raw_id) <= 2**62:
        return render(
            request,
            "error.html",
            {"status": 400, "title": "Request refused", "detail": "The form names no owner."},
            status=400,
        )
    owner = await _owner(api, admin, kind, int(raw_id))
    nonce = text(form, "nonce")
    sent: SentForms = request.app.state.sent_webhook_forms
    if not nonce or not sent.claim(nonce):
        return render(request, "webhook_resent.html", {"webhook_id": sent.made(nonce)}, status=409)
    typed = WebhookForm.read(form)
    try:
        created: dict[str, Any] = await api.call(
            "POST", "/webhooks", actor=admin.name, json=typed.body(kind, int(owner["id"]))
        )
    except Invalid as exc:
        sent.release(nonce)
        return _form_page(request, kind, owner, typed, exc.errors, status=422)
    except ApiError as exc:
        sent.release(nonce)
        return _form_page(request, kind, owner, typed, api_errors(exc), status=422)
    except BaseException:
        sent.release(nonce)
        raise
    sent.remember(nonce, int(created["id"]))
    return render(request, "webhook_secret.html", {"webhook": created, "plural": PLURAL, "renewed": False})


@router.get("/webhooks/{webhook_id}", summary="One webhook endpoint")
async def show_webhook(request: Request, webhook_id: Id, admin: AdminDep, api: ApiDep) -> Response:
    webhook = await api.call("GET", f"/webhooks/{webhook_id}", actor=admin.name)
    return render(request, "webhook.html", {"webhook": webhook, "plural": PLURAL})


@router.post("/webhooks/{webhook_id}/status", summary="Enable or disable a webhook endpoint")
async def set_status(request: Request, webhook_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    enabled = text(form, "enabled") == "true"
    await api.call("PATCH", f"/webhooks/{webhook_id}", actor=admin.name, json={"enabled": enabled})
    note = "enabled" if enabled else "disabled: nothing is posted to it until it is enabled again"
    return redirect(request, f"/webhooks/{webhook_id}", ok(f"The webhook is {note}."))


@router.get("/webhooks/{webhook_id}/secret", summary="Confirm giving a webhook endpoint a new secret")
async def confirm_secret(request: Request, webhook_id: Id, admin: AdminDep, api: ApiDep) -> Response:
    webhook = await api.call("GET", f"/webhooks/{webhook_id}", actor=admin.name)
    return render(request, "webhook_confirm.html", {"webhook": webhook, "plural": PLURAL, "action": "secret"})


@router.post("/webhooks/{webhook_id}/secret", summary="Give a webhook endpoint a new secret and show it, this once")
async def renew_secret(request: Request, webhook_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    renewed = await api.call("POST", f"/webhooks/{webhook_id}/secret", actor=admin.name)
    return render(request, "webhook_secret.html", {"webhook": renewed, "plural": PLURAL, "renewed": True})


@router.get("/webhooks/{webhook_id}/delete", summary="Confirm deleting a webhook endpoint")
async def confirm_delete(request: Request, webhook_id: Id, admin: AdminDep, api: ApiDep) -> Response:
    webhook = await api.call("GET", f"/webhooks/{webhook_id}", actor=admin.name)
    return render(request, "webhook_confirm.html", {"webhook": webhook, "plural": PLURAL, "action": "delete"})


@router.post("/webhooks/{webhook_id}/delete", summary="Delete a webhook endpoint")
async def delete_webhook(request: Request, webhook_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    webhook = await api.call("GET", f"/webhooks/{webhook_id}", actor=admin.name)
    await api.call("DELETE", f"/webhooks/{webhook_id}", actor=admin.name)
    back = f"/{PLURAL[webhook['owner_type']]}/{webhook['owner_id']}"
    return redirect(request, back, ok(f"Deleted the webhook to {webhook['url']}."))
