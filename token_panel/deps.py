"""Request dependencies: the session, the signed-in admin, CSRF-checked forms, the two APIs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from starlette.datastructures import FormData

from cartero_common.clock import Clock
from cartero_common.http import from_state
from token_panel.admin_api import AdminApi
from token_panel.message_log import MessageLog
from token_panel.sessions import CSRF_FIELD, SESSION_COOKIE, CookieSigner, PanelSession


class SignInRequired(Exception):
    """No admin is signed in: the answer is a redirect to the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfRejected(Exception):
    """A form came without this session's CSRF token; nothing it asked for is done."""


def load_session(request: Request) -> PanelSession | None:
    """The session in the cookie, if it is genuine and unexpired. Its admin is not known (`user`
    is None) until `checked_session` has asked the validator."""
    if hasattr(request.state, "panel_session"):
        cached: PanelSession | None = request.state.panel_session
        return cached
    signer: CookieSigner = request.app.state.signer
    session = signer.load_session(request.cookies.get(SESSION_COOKIE))
    request.state.panel_session = session
    return session


def use_session(request: Request, session: PanelSession) -> None:
    """Make `session` the one this request renders with, and send its cookie."""
    request.state.panel_session = session
    request.state.session_checked = True
    request.state.set_session = session


async def checked_session(request: Request) -> PanelSession | None:
    """The cookie's session, with its admin when the validator says the session is live: asked
    on every request, so one ended anywhere (sign-out, a new password, a deleted admin) is ended
    here too. An ended one is dropped, and its cookie with it."""
    session = load_session(request)
    if getattr(request.state, "session_checked", False) or session is None or session.sid is None:
        return session
    api: AdminApi = request.app.state.api
    live = await api.live_session(session.sid)
    checked = None if live is None else session.of(str(live["username"]))
    request.state.panel_session = checked
    request.state.session_checked = True
    if checked is None:
        request.state.clear_session = True
    return checked


async def visitor_session(request: Request) -> PanelSession:
    """The current session, or a new anonymous one (a CSRF token for the sign-in form)."""
    session = await checked_session(request)
    if session is None:
        clock: Clock = request.app.state.clock
        session = PanelSession.anonymous(clock())
        use_session(request, session)
    return session


@dataclass(frozen=True)
class Admin:
    name: str
    session: PanelSession


async def require_admin(request: Request) -> Admin:
    session = await checked_session(request)
    if session is None or session.user is None:
        raise SignInRequired(request.url.path if request.method == "GET" else "/")
    return Admin(session.user, session)


async def checked_form(request: Request) -> FormData:
    """The posted form, once its CSRF token matches the session's (the sign-in form included)."""
    session = load_session(request)
    try:
        form = await request.form()
    except Exception:  # noqa: BLE001 - an unreadable body is a refused form, not a 500
        raise CsrfRejected() from None
    given = form.get(CSRF_FIELD)
    if session is None or not session.csrf_matches(given if isinstance(given, str) else None):
        raise CsrfRejected()
    return form


AdminDep = Annotated[Admin, Depends(require_admin)]
FormDep = Annotated[FormData, Depends(checked_form)]
ApiDep = Annotated[AdminApi, Depends(from_state("api"))]
LogDep = Annotated[MessageLog, Depends(from_state("message_log"))]
ZoneDep = Annotated[ZoneInfo, Depends(from_state("zone"))]
ClockDep = Annotated[Clock, Depends(from_state("clock"))]
