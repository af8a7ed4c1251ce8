"""Request dependencies: the database, the moment, and the two credentials."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cartero_common.clock import Clock
from cartero_common.credentials import bearer, credential_matches
from cartero_common.http import Problem, from_state
from token_validator.config import Settings
from token_validator.db import Database
from token_validator.moment import Moment

ADMIN_HEADER = "X-Cartero-Admin"
DEFAULT_ACTOR = "admin-key"
_ACTOR = re.compile(r"[A-Za-z0-9._@-]{1,100}")


def _unauthorized(what: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        f"This endpoint needs the {what} as a bearer token.",
        headers={"WWW-Authenticate": "Bearer"},
    )


# The dependencies below are `async def` although they never await: FastAPI runs a plain `def`
# dependency in the threadpool, a thread hand-off each on every decision (py-spy under
# `make bench`; 1.8 -> 1.7 ms of CPU per decision). None of them blocks.

# Declared for the OpenAPI document only (auto_error off); the checks below do the work.
_SERVICE_SCHEME = HTTPBearer(auto_error=False, scheme_name="ServiceKey", description="VALIDATOR_SERVICE_KEY")
_ADMIN_SCHEME = HTTPBearer(auto_error=False, scheme_name="AdminKey", description="VALIDATOR_ADMIN_KEY")
_WEBHOOKS_SCHEME = HTTPBearer(auto_error=False, scheme_name="WebhooksKey", description="VALIDATOR_WEBHOOKS_KEY")


async def check_service_key(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if not credential_matches(bearer(request.headers), settings.validator_service_key):
        raise _unauthorized("service credential (VALIDATOR_SERVICE_KEY)")


async def require_service(request: Request, _: Annotated[Any, Depends(_SERVICE_SCHEME)] = None) -> None:
    await check_service_key(request)


async def require_webhooks_key(request: Request, _: Annotated[Any, Depends(_WEBHOOKS_SCHEME)] = None) -> None:
    settings: Settings = request.app.state.settings
    if not credential_matches(bearer(request.headers), settings.validator_webhooks_key):
        raise _unauthorized("webhooks credential (VALIDATOR_WEBHOOKS_KEY)")


# `/v1/validate`, the hot path, checks the key itself (`api.service._ServedDirectly`) and declares
# the scheme for the OpenAPI document only.
SERVICE_SECURITY: list[dict[str, list[str]]] = [{"ServiceKey": []}]


@dataclass(frozen=True)
class Actor:
    """Who acts through the admin API: the admin named by the caller, for the audit trail."""

    name: str
    client_ip: str | None


async def require_admin(request: Request, _: Annotated[Any, Depends(_ADMIN_SCHEME)] = None) -> Actor:
    settings: Settings = request.app.state.settings
    if not credential_matches(bearer(request.headers), settings.validator_admin_key):
        raise _unauthorized("admin credential (VALIDATOR_ADMIN_KEY)")
    name = request.headers.get(ADMIN_HEADER)
    if name is not None and not _ACTOR.fullmatch(name):
        raise Problem(422, "invalid_request", f"{ADMIN_HEADER} must be an admin username (A-Z a-z 0-9 . _ @ -).")
    return Actor(name or DEFAULT_ACTOR, request.client.host if request.client else None)


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_sessions(request: Request) -> sessionmaker[Session]:
    """Handlers open one transaction each (`with db.begin() as session`) and it commits before
    they answer, so a failed commit is never reported as a success."""
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


def moment_of(request: Request) -> Moment:
    clock: Clock = request.app.state.clock
    return Moment.at(clock(), request.app.state.zone)


async def get_moment(request: Request) -> Moment:
    return moment_of(request)


EngineDep = Annotated[Engine, Depends(get_engine)]
DatabaseDep = Annotated[Database, Depends(from_state("db"))]
DbDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
MomentDep = Annotated[Moment, Depends(get_moment)]
ZoneDep = Annotated[ZoneInfo, Depends(from_state("zone"))]
AdminDep = Annotated[Actor, Depends(require_admin)]
ServiceAuth: Any = Depends(require_service)
WebhooksAuth: Any = Depends(require_webhooks_key)
