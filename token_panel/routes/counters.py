"""Changing a counter (a token's restriction, a group's shared quota, either's rate limit) from a posted form; the
result is a redirect back to the page the form was on, with a note."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from token_panel.admin_api import AdminApi, ApiError
from token_panel.deps import Admin
from token_panel.forms import Invalid, rate, restriction, text, whole_number
from token_panel.web import failed, ok, redirect


async def set_restriction(
    request: Request, admin: Admin, api: AdminApi, form: Any, *, path: str, back: str, done: str
) -> Response:
    """PUT `{type, limit?}` to `path`."""
    try:
        body = restriction(text(form, "restriction"), text(form, "limit"))
    except Invalid as exc:
        return redirect(request, back, failed(" ".join(exc.errors.values())))
    await api.call("PUT", path, actor=admin.name, json=body)
    return redirect(request, back, ok(done))


async def grant(request: Request, admin: Admin, api: AdminApi, form: Any, *, path: str, back: str) -> Response:
    """POST `{grant: N}` to `path`: N more uses in the current period."""
    try:
        uses = whole_number(text(form, "grant"), "grant")
        await api.call("POST", path, actor=admin.name, json={"grant": uses})
    except Invalid as exc:
        return redirect(request, back, failed(" ".join(exc.errors.values())))
    except ApiError as exc:
        if exc.status == 404:
            raise
        return redirect(request, back, failed(exc.detail))  # e.g. not_limited: nothing to grant
    return redirect(request, back, ok(f"Granted {uses:,} more uses for this period."))


async def set_rate(request: Request, admin: Admin, api: AdminApi, form: Any, *, path: str, back: str) -> Response:
    """PUT `{rate: {limit, per}}` to `path`; an empty limit takes the rate away."""
    try:
        body = {"rate": rate(text(form, "rate_limit"), text(form, "rate_per"))}
    except Invalid as exc:
        return redirect(request, back, failed(" ".join(exc.errors.values())))
    await api.call("PUT", path, actor=admin.name, json=body)
    chosen = body["rate"]
    done = "The rate limit is removed." if chosen is None else f"At most {chosen['limit']:,} per {chosen['per']} now."
    return redirect(request, back, ok(done))
