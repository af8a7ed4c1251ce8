"""Tokens: list, create (the plaintext shown once), revoke, change restriction or rate, grant uses."""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from token_panel.admin_api import AdminApi, ApiError
from token_panel.deps import Admin, AdminDep, ApiDep, ClockDep, FormDep, ZoneDep, require_admin
from token_panel.forms import ACTIONS, KINDS, Invalid, TokenForm, text
from token_panel.routes import counters
from token_panel.web import ok, redirect, render

router = APIRouter(dependencies=[Depends(require_admin)])

PER_PAGE = 25
Id = Annotated[int, Path(ge=1, le=2**62)]
# The API's field names, as the form calls them.
_FIELDS = {
    "owner_id": "owner",
    "expires_at": "expires",
    "restriction.limit": "limit",
    "restriction": "restriction",
    "rate.limit": "rate_limit",
    "rate.per": "rate_per",
}
_REMEMBERED_FORMS = 1000


class SentForms:
    """Nonces of token forms already sent, so a resent form (the back button, a double click)
    says which token it made instead of making, and showing, another."""

    def __init__(self) -> None:
        self._made: OrderedDict[str, int | None] = OrderedDict()

    def claim(self, nonce: str) -> bool:
        """True for the first sending of this form; later ones are refused, even while it runs."""
        if nonce in self._made:
            return False
        self._made[nonce] = None
        while len(self._made) > _REMEMBERED_FORMS:
            self._made.popitem(last=False)
        return True

    def made(self, nonce: str) -> int | None:
        return self._made.get(nonce)

    def remember(self, nonce: str, token_id: int) -> None:
        self._made[nonce] = token_id

    def release(self, nonce: str) -> None:
        self._made.pop(nonce, None)


@router.get("/tokens", summary="List tokens")
async def list_tokens(
    request: Request,
    admin: AdminDep,
    api: ApiDep,
    q: Annotated[str, Query(max_length=100)] = "",
    kind: Annotated[str, Query(pattern="^(|application|group|user)$")] = "",
    status: Annotated[str, Query(pattern="^(|active|revoked|expired)$")] = "",
    owner_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
) -> Response:
    owner_id = owner_id if kind else None
    params = {"q": q, "kind": kind, "status": status, "owner_id": owner_id, "page": page, "per_page": PER_PAGE}
    found = await api.call("GET", "/tokens", actor=admin.name, params=params)
    filters = {"q": q, "kind": kind, "status": status, "owner_id": owner_id}
    return render(request, "tokens.html", {"found": found, "filters": filters})


def _form_page(request: Request, typed: TokenForm, errors: dict[str, str] | None = None, status: int = 200) -> Response:
    context = {"typed": typed, "errors": errors or {}, "kinds": KINDS, "actions": ACTIONS}
    return render(request, "token_new.html", {**context, "nonce": secrets.token_urlsafe(16)}, status=status)


@router.get("/tokens/new", summary="The form for a new token")
def new_token(
    request: Request,
    kind: Annotated[str, Query(pattern="^(|application|group|user)$")] = "",
    owner: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    return _form_page(request, TokenForm(kind=kind or "user", owner=owner))


async def _owner_id(api: AdminApi, admin: Admin, typed: TokenForm) -> int:
    owner = await api.find_owner(*typed.check_owner(), actor=admin.name)
    if owner is None:
        raise Invalid({"owner": f"There is no {typed.kind} with this name."})
    return int(owner["id"])


@router.post("/tokens", summary="Create a token and show it, this once")
async def create_token(
    request: Request, admin: AdminDep, form: FormDep, api: ApiDep, zone: ZoneDep, clock: ClockDep
) -> Response:
    nonce = text(form, "nonce")
    sent: SentForms = request.app.state.sent_forms
    if not nonce or not sent.claim(nonce):
        return render(request, "token_resent.html", {"token_id": sent.made(nonce)}, status=409)
    typed = TokenForm.read(form)
    try:
        body = typed.body(await _owner_id(api, admin, typed), zone, clock())
        created: dict[str, Any] = await api.call("POST", "/tokens", actor=admin.name, json=body)
    except Invalid as exc:
        sent.release(nonce)
        return _form_page(request, typed, exc.errors, status=422)
    except ApiError as exc:
        sent.release(nonce)
        errors = {_FIELDS.get(k, k): v for k, v in exc.field_errors().items()} or {"form": exc.detail}
        return _form_page(request, typed, errors, status=422)
    except BaseException:
        sent.release(nonce)
        raise
    sent.remember(nonce, int(created["id"]))
    return render(request, "token_created.html", {"token": created})


@router.get("/tokens/{token_id}", summary="One token")
async def show_token(request: Request, token_id: Id, admin: AdminDep, api: ApiDep) -> Response:
    token = await api.call("GET", f"/tokens/{token_id}", actor=admin.name)
    refused = await api.call("GET", "/refusals", actor=admin.name, params={"token_id": token_id, "per_page": 5})
    return render(request, "token.html", {"token": token, "refusals": refused})


@router.post("/tokens/{token_id}/restriction", summary="Change a token's restriction")
async def set_restriction(request: Request, token_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    back, path = f"/tokens/{token_id}", f"/tokens/{token_id}/restriction"
    return await counters.set_restriction(
        request, admin, api, form, path=path, back=back, done="The restriction is changed."
    )


@router.post("/tokens/{token_id}/rate", summary="Set or remove a token's rate limit")
async def set_rate(request: Request, token_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    path = f"/tokens/{token_id}/rate"
    return await counters.set_rate(request, admin, api, form, path=path, back=f"/tokens/{token_id}")


@router.post("/tokens/{token_id}/grant", summary="Grant a token extra uses for this period")
async def grant_uses(request: Request, token_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    path = f"/tokens/{token_id}/remaining"
    return await counters.grant(request, admin, api, form, path=path, back=f"/tokens/{token_id}")


@router.get("/tokens/{token_id}/revoke", summary="Confirm revoking a token")
async def confirm_revoke(request: Request, token_id: Id, admin: AdminDep, api: ApiDep) -> Response:
    token = await api.call("GET", f"/tokens/{token_id}", actor=admin.name)
    return render(request, "token_revoke.html", {"token": token})


@router.post("/tokens/{token_id}/revoke", summary="Revoke a token")
async def revoke(request: Request, token_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    token = await api.call("POST", f"/tokens/{token_id}/revoke", actor=admin.name)
    return redirect(request, f"/tokens/{token_id}", ok(f"Token {token['prefix']}… is revoked."))
