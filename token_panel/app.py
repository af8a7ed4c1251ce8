"""Wiring: settings, the two API clients, cookies, pages, error pages and security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from cartero_common.clock import Clock, system_clock
from cartero_common.http import field_errors, problem_response
from token_panel.admin_api import AdminApi, ApiError, ApiUnavailable
from token_panel.config import Settings
from token_panel.dead_letters import DeadLetters
from token_panel.deps import CsrfRejected, SignInRequired, load_session
from token_panel.message_log import MessageLog
from token_panel.routes import auth, dead_letters, groups, home, messages, owners, records, tokens, webhooks
from token_panel.sessions import FLASH_COOKIE, FLASH_SECONDS, SESSION_COOKIE, CookieSigner
from token_panel.web import make_templates, render

STATIC = Path(__file__).parent / "static"
ROUTERS = tuple(
    module.router for module in (auth, home, owners, groups, tokens, webhooks, records, messages, dead_letters)
)
# Scripts and styles only from our own files; no frames, no forms posting elsewhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept or "*/*" in accept or not accept


def _error_page(request: Request, status: int, title: str, detail: str, **extra: Any) -> Response:
    if not _wants_html(request):
        code = extra.pop("code", "error")
        return problem_response(status, code, detail, instance=request.url.path, **extra)
    load_session(request)
    return render(request, "error.html", {"status": status, "title": title, "detail": detail}, status=status)


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        target = "/signin" if exc.next_path in ("/", "") else "/signin?" + urlencode({"next": exc.next_path})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        detail = "This form has expired or did not come from this panel. Go back, reload the page and try again."
        return _error_page(request, 403, "Form refused", detail, code="csrf_failed")

    @app.exception_handler(ApiUnavailable)
    async def _unavailable(request: Request, exc: ApiUnavailable) -> Response:
        detail = f"The {exc.service} is not answering ({exc.reason}). Try again in a moment."
        return _error_page(request, 503, "Service unavailable", detail, code="upstream_unavailable")

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if exc.status == 404:
            return _error_page(request, 404, "Not found", exc.detail, code="not_found")
        return _error_page(request, 400, "Request refused", exc.detail, code=exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed"}
        detail = "There is no page here." if exc.status_code == 404 else str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_page(request, exc.status_code, titles.get(exc.status_code, "Error"), detail, code=code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        listed = field_errors(exc.errors())
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in listed)
        return _error_page(request, 400, "Bad request", detail, code="invalid_request", errors=listed)


def _install_cookies_and_headers(app: FastAPI, settings: Settings, signer: CookieSigner, clock: Clock) -> None:
    def cookie(response: Response, name: str, value: str | None, max_age: int) -> None:
        """Set (or, with None, delete) a cookie scripts cannot read and other sites do not get."""
        response.set_cookie(
            name,
            value or "",
            max_age=max_age if value is not None else 0,
            path="/",
            httponly=True,
            samesite="lax",
            secure=settings.panel_cookie_secure,
        )

    @app.middleware("http")
    async def _finish(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        state = request.state
        # A new session (a sign-in, or a visitor's after an ended one) wins over clearing the old.
        if (session := getattr(state, "set_session", None)) is not None:
            cookie(response, SESSION_COOKIE, signer.dump_session(session), session.seconds_left(clock()))
        elif getattr(state, "clear_session", False):
            cookie(response, SESSION_COOKIE, None, 0)
        if (flash := getattr(state, "new_flash", None)) is not None:
            cookie(response, FLASH_COOKIE, signer.dump_flash(flash), FLASH_SECONDS)
        elif getattr(state, "clear_flash", False):
            cookie(response, FLASH_COOKIE, None, 0)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            # Admin pages hold tokens, names and usage: never kept by a cache or the back button.
            response.headers["Cache-Control"] = "no-store"
        return response


def create_app(
    settings: Settings | None = None,
    clock: Clock = system_clock,
    *,
    api: AdminApi | None = None,
    log: MessageLog | None = None,
) -> FastAPI:
    settings = settings or Settings()
    api = api or AdminApi(settings.validator_url, settings.validator_admin_key, timeout=settings.validator_timeout)
    log = log or MessageLog(
        settings.consumer_logs_url, settings.consumer_logs_read_key, timeout=settings.validator_timeout
    )
    dead = DeadLetters(
        settings.dead_letters_url,
        settings.dead_letters_key,
        timeout=settings.validator_timeout,
        action_timeout=settings.dead_letters_action_timeout,
    )
    zone = ZoneInfo(settings.timezone)
    signer = CookieSigner(settings.panel_secret_key, clock)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await api.close()
        await log.close()
        await dead.close()

    app = FastAPI(
        title="Cartero token panel", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.settings = settings
    app.state.api = api
    app.state.message_log = log
    app.state.dead_letters = dead
    app.state.clock = clock
    app.state.zone = zone
    app.state.signer = signer
    app.state.sent_forms = tokens.SentForms()
    app.state.sent_webhook_forms = tokens.SentForms()
    app.state.templates = make_templates(zone)
    _install_error_pages(app)
    _install_cookies_and_headers(app, settings, signer, clock)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    if proxies := settings.trusted_proxy_list():
        # The client's address (what the validator counts failed sign-ins by) from X-Forwarded-For, as far
        # back as the chain passes through these proxies; anyone else's header is ignored.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    return app
