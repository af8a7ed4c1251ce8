"""`GET /v1/events`: the message log, oldest first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from cartero_common.http import install_problem_handlers
from consumer_logs.repository import EventFilter, find_events, public_event

router = APIRouter()


@router.get("/v1/events", summary="Events from the message log, oldest first")
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
        return [public_event(event) for event in found]


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


def create_app(sessions: sessionmaker[Any], consuming: Any = lambda: True) -> FastAPI:
    app = FastAPI(title="Cartero message log", version="0.1.0")
    app.state.sessions = sessions
    app.state.consuming = consuming
    install_problem_handlers(app)
    app.include_router(router)
    return app
