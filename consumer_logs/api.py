"""`GET /v1/events`: the message log, oldest first, to holders of CONSUMER_LOGS_READ_KEY only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from cartero_common.http import Problem, install_problem_handlers, require_bearer_key
from consumer_logs.repository import EventFilter, events_of, find_events, public_event
from consumer_logs.status import message_status, owned_by

require_read_key = require_bearer_key(
    "CONSUMER_LOGS_READ_KEY", scheme_name="ReadKey", state_field="read_key", needed_for="Reading the message log"
)
# Only the status key: the read key's holders read events, not this.
require_status_key = require_bearer_key(
    "CONSUMER_LOGS_STATUS_KEY",
    scheme_name="StatusKey",
    state_field="status_key",
    needed_for="Reading a message's status",
)


# Every route that reads the log goes on this router; the health and metrics routes stay open.
reads = APIRouter(dependencies=[Depends(require_read_key)])
router = APIRouter()


@reads.get(
    "/v1/events",
    summary="Events from the message log, oldest first",
    description="A lookup by `id` shows the event's phone numbers and addresses whole; any other query masks them.",
)
def list_events(
    request: Request,
    id: Annotated[str | None, Query(max_length=200, description="Message id")] = None,
    evento: Annotated[str | None, Query(max_length=40)] = None,
    cola: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[
        datetime | None,
        Query(description="ISO-8601 instant; UTC when it has no offset. Compared with the time the event was stored."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    sessions: sessionmaker[Any] = request.app.state.sessions
    with sessions() as session:
        found = find_events(session, EventFilter(message_id=id, evento=evento, cola=cola, since=since, limit=limit))
        return [public_event(event, mask_addresses=id is None) for event in found]


statuses = APIRouter(dependencies=[Depends(require_status_key)])


@statuses.get(
    "/v1/status/{message_id}",
    summary="One message's status and timeline, for the owner that sent it",
    description="404 `message_not_found` unless an `enviado` event of this id names `owner_ref`: an"
    " unknown id and another owner's are answered alike.",
    responses={404: {"description": "`message_not_found`", "content": {"application/problem+json": {}}}},
)
def read_status(
    request: Request,
    message_id: Annotated[str, Path(min_length=1, max_length=200)],
    owner_ref: Annotated[str, Query(min_length=1, max_length=100, description="`<kind>:<id>` of the asking owner")],
) -> dict[str, Any]:
    sessions: sessionmaker[Any] = request.app.state.sessions
    with sessions() as session:
        found = events_of(session, message_id)
        if not owned_by(found, owner_ref):
            raise Problem(404, "message_not_found", "No message with this id was sent by this owner.")
        return message_status(message_id, found)


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> Response:
    checks = {"database": "ok", "broker": "ok" if request.app.state.consuming() else "connecting"}
    try:
        with request.app.state.sessions() as session:
            session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001
        checks["database"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(
    sessions: sessionmaker[Any], *, read_key: str, status_key: str = "", consuming: Any = lambda: True
) -> FastAPI:
    app = FastAPI(title="Cartero message log", version="0.1.0")
    app.state.sessions = sessions
    app.state.consuming = consuming
    app.state.read_key = read_key
    app.state.status_key = status_key
    install_problem_handlers(app)
    app.include_router(reads)
    app.include_router(statuses)
    app.include_router(router)
    return app
