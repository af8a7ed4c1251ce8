"""Sign in (through the validator's admin API), sign out, and the health probe."""

from __future__ import annotations

import math
from datetime import datetime

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from token_panel.admin_api import ApiError
from token_panel.deps import ApiDep, FormDep, load_session, use_session, visitor_session
from token_panel.forms import text
from token_panel.sessions import PanelSession
from token_panel.web import ok, redirect, render

router = APIRouter()


def safe_next(value: str | None) -> str:
    """Only a path of this site: never `//elsewhere` or a full URL (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


def _sign_in_page(request: Request, status: int, *, next_path: str, username: str = "", error: str = "") -> Response:
    context = {"next": next_path, "username": username, "error": error}
    return render(request, "signin.html", context, status=status)


@router.get("/signin", summary="The sign-in page")
async def sign_in_page(request: Request, next: str | None = None) -> Response:
    session = await visitor_session(request)
    if session.user is not None:
        return redirect(request, safe_next(next))
    return _sign_in_page(request, 200, next_path=safe_next(next))


@router.post("/signin", summary="Check an admin's username and password and start a session")
async def sign_in(request: Request, form: FormDep, api: ApiDep) -> Response:
    username, password = text(form, "username"), form.get("password")
    next_path = safe_next(text(form, "next"))
    if not username or not isinstance(password, str) or not password:
        error = "Enter your username and password."
        return _sign_in_page(request, 422, next_path=next_path, username=username, error=error)
    # The validator counts failures per name *from this address* (guessing an admin's password
    # locks the guesser out, not the admin everywhere) and per address, for every panel process.
    address = request.client.host[:64] if request.client else None
    try:
        signed_in = await api.sign_in(username, password, address)
    except ApiError as exc:
        if exc.status == 429:
            wait = exc.retry_after or 60
            minutes = max(1, math.ceil(wait / 60))
            error = f"Too many failed sign-ins. Try again in {minutes} minute{'s' if minutes > 1 else ''}."
            response = _sign_in_page(request, 429, next_path=next_path, username=username, error=error)
            response.headers["Retry-After"] = str(wait)
            return response
        error = "Wrong username or password."
        return _sign_in_page(request, 401, next_path=next_path, username=username, error=error)
    expires_at = datetime.fromisoformat(str(signed_in["expires_at"]))
    session = PanelSession.signed_in(str(signed_in["id"]), str(signed_in["username"]), expires_at)
    use_session(request, session)
    return redirect(request, next_path, ok(f"Signed in as {session.user}."))


@router.post("/signout", summary="End this session")
async def sign_out(request: Request, form: FormDep, api: ApiDep) -> Response:
    session = load_session(request)
    if session is not None and session.sid is not None:
        # Ended by the validator, so every panel process refuses a copy of the cookie from now on.
        await api.end_session(session.sid)
    request.state.clear_session = True
    return redirect(request, "/signin", ok("You are signed out."))


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Process metrics for Prometheus, like every service; they name no admin and no token."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
