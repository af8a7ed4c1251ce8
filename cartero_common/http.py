"""RFC 9457 problem details for the FastAPI services: one exception, one handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from cartero_common.credentials import bearer, credential_matches

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def from_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that hands a handler what the app's wiring put on `app.state.<name>`.

    Declared `async` so FastAPI calls it on the event loop rather than through its threadpool,
    which it does for every plain `def` dependency on every request.
    """

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = f"state_{name}"
    return dependency


class Problem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = problem_body(status, code, detail, instance=instance, **extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def problem_body(status: int, code: str, detail: str, *, instance: str | None = None, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem object: a response's body, or one item's outcome in a batch answer."""
    body: dict[str, Any] = {
        "type": f"https://cartero.dev/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return body


def field_errors(errors: Any) -> list[dict[str, str]]:
    """Pydantic errors as `[{"field": "telefono", "message": "…"}]`, input values left out so
    nothing a client sent (tokens included) is echoed back."""
    listed = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
        listed.append({"field": ".".join(loc) or "body", "message": str(error.get("msg", "invalid"))})
    return listed


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status, exc.code, exc.detail, instance=request.url.path, headers=exc.headers, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(
            422,
            "invalid_request",
            "The request has invalid fields.",
            instance=request.url.path,
            errors=field_errors(exc.errors()),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem_response(
            exc.status_code,
            code,
            str(exc.detail),
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )


def require_bearer_key(
    variable: str, *, scheme_name: str, state_field: str, needed_for: str
) -> Callable[..., Awaitable[None]]:
    """A route dependency: 401 problem unless the request carries `app.state.<state_field>` as its
    bearer token (constant time; an unset key lets nobody in). `variable` names the setting, in
    the OpenAPI document (security scheme `scheme_name`) and in the refusal ("<needed_for> needs
    <variable> as a bearer token")."""
    # Declared for the OpenAPI document only (auto_error off): the check below answers the 401.
    scheme = HTTPBearer(auto_error=False, scheme_name=scheme_name, description=variable)

    # The scheme as a default, not in `Annotated`: this module's annotations are strings, and
    # FastAPI could not resolve a local name inside one.
    declared = Depends(scheme)

    async def check(request: Request, _: Any = declared) -> None:
        # `async` so FastAPI runs it on the event loop, not through its threadpool.
        if not credential_matches(bearer(request.headers), getattr(request.app.state, state_field)):
            raise Problem(
                401,
                "unauthorized",
                f"{needed_for} needs {variable} as a bearer token.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check
