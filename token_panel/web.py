"""Rendering: the Jinja2 environment (autoescaped), its filters, pages, redirects and flashes."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from token_panel import message_log
from token_panel.sessions import FLASH_COOKIE, CookieSigner, Flash, PanelSession

TEMPLATES = Path(__file__).parent / "templates"


def when(value: Any, zone: ZoneInfo, with_seconds: bool = False) -> str:
    """An instant from an API (ISO-8601 text or datetime) as local wall time, or an en dash."""
    if value in (None, ""):
        return "–"
    try:
        instant = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if instant.tzinfo is not None:
        instant = instant.astimezone(zone)
    return instant.strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def as_input(value: datetime | None, zone: ZoneInfo) -> str:
    """The value a `datetime-local` input shows for an instant."""
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def query(params: dict[str, Any], **changes: Any) -> str:
    """`?a=1&b=2` from the current filters with some changed; empty values left out."""
    merged = {**params, **changes}
    clean = {k: v for k, v in merged.items() if v not in (None, "")}
    return "?" + urlencode(clean) if clean else "?"


def make_templates(zone: ZoneInfo) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every value is HTML-escaped unless a template says otherwise (none do)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = lambda value, seconds=False: when(value, zone, seconds)
    env.filters["pretty_json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
    env.filters["number"] = lambda value: "–" if value is None else f"{int(value):,}"
    env.filters["uses"] = lambda value: f"{int(value):,} use" + ("" if int(value) == 1 else "s")
    env.globals["query"] = query
    env.globals["event_summary"] = message_log.summary
    env.globals["event_fields"] = message_log.fields
    return Jinja2Templates(env=env)


def current_session(request: Request) -> PanelSession | None:
    session: PanelSession | None = getattr(request.state, "panel_session", None)
    return session


def take_flash(request: Request) -> Flash | None:
    """The flash left by the previous answer; it is cleared by this one."""
    signer: CookieSigner = request.app.state.signer
    flash = signer.load_flash(request.cookies.get(FLASH_COOKIE))
    if flash is not None:
        request.state.clear_flash = True
    return flash


def render(request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    session = current_session(request)
    page = {
        "request": request,
        "admin": session.user if session else None,
        "csrf": session.csrf if session else "",
        "flash": take_flash(request),
        "path": request.url.path,
        "errors": {},
        **(context or {}),
    }
    templates: Jinja2Templates = request.app.state.templates
    response: HTMLResponse = templates.TemplateResponse(request, template, page, status_code=status)
    return response


def redirect(request: Request, url: str, flash: Flash | None = None) -> RedirectResponse:
    """303 after a POST, so reloading the next page does not post again."""
    if flash is not None:
        request.state.new_flash = flash
    return RedirectResponse(url, status_code=303)


def ok(text: str) -> Flash:
    return Flash("ok", text)


def failed(text: str) -> Flash:
    return Flash("error", text)
