"""`/v1/dead-letters`: counts, listings, replay and discard, to holders of DEAD_LETTERS_KEY."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cartero_common.http import Problem, install_problem_handlers, require_bearer_key
from dead_letters.broker import QUEUES, DeadLetterQueues, Moved, Stopped
from dead_letters.views import public

ACTIONS = Counter(
    "dead_letters_actions_total", "Dead letters replayed or discarded, by DLQ and action.", ["queue", "action"]
)
MAX_IDS = 1000
MessageId = Annotated[str, Field(min_length=1, max_length=200)]


require_key = require_bearer_key(
    "DEAD_LETTERS_KEY", scheme_name="DeadLettersKey", state_field="key", needed_for="The dead letters"
)


def known(queue: Annotated[str, Path(max_length=64)]) -> str:
    if queue not in QUEUES:
        raise Problem(404, "unknown_queue", f"There is no dead-letter queue {queue!r}; there are {', '.join(QUEUES)}.")
    return queue


Queue = Annotated[str, Depends(known)]


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ids: list[MessageId] | None = Field(default=None, min_length=1, max_length=MAX_IDS)
    all: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> Replay:
        if (self.ids is None) == (not self.all):
            raise ValueError('give either "ids" or "all": true')
        return self


class Discard(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ids: list[MessageId] = Field(min_length=1, max_length=MAX_IDS)


guarded = APIRouter(dependencies=[Depends(require_key)])
router = APIRouter()


def _queues(request: Request) -> DeadLetterQueues:
    found: DeadLetterQueues = request.app.state.queues
    return found


@guarded.get("/v1/dead-letters", summary="How many messages each DLQ holds")
async def counts(request: Request) -> dict[str, int]:
    return await run_in_threadpool(_queues(request).counts)


@guarded.get("/v1/dead-letters/{queue}", summary="The DLQ's messages, oldest first (none is removed)")
async def listing(request: Request, queue: Queue, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    limit = min(limit, request.app.state.max_list)
    held = await run_in_threadpool(_queues(request).browse, queue, limit)
    return {"queue": queue, "messages": [public(h, queue) for h in held]}


def _answer(queue: str, action: str, moved: Moved) -> dict[str, Any]:
    ACTIONS.labels(queue, action).inc(len(moved.done))
    return {"queue": queue, "action": action, "count": len(moved.done), "ids": moved.done, "not_found": moved.not_found}


@guarded.post("/v1/dead-letters/{queue}/replay", summary="Move messages back to their queue, each after its confirm")
async def replay(request: Request, queue: Queue, body: Replay) -> dict[str, Any]:
    ids = None if body.all else set(body.ids or ())
    try:
        moved = await run_in_threadpool(_queues(request).replay, queue, ids)
    except Stopped as exc:
        ACTIONS.labels(queue, "replay").inc(len(exc.done))
        raise Problem(
            503,
            "replay_unconfirmed",
            f"The broker did not take a copy ({exc.reason}); that message and the rest are still in {queue}.",
            ids=exc.done,
        ) from None
    return _answer(queue, "replay", moved)


@guarded.post("/v1/dead-letters/{queue}/discard", summary="Remove messages from the DLQ for good")
async def discard(request: Request, queue: Queue, body: Discard) -> dict[str, Any]:
    return _answer(queue, "discard", await run_in_threadpool(_queues(request).discard, queue, set(body.ids)))


@router.get("/healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> Response:
    try:
        _queues(request).counts()
        broker = "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready
        broker = "unreachable"
    ready = broker == "ok"
    body = {"status": "ok" if ready else "unavailable", "checks": {"broker": broker}}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(queues: DeadLetterQueues, *, key: str, max_list: int = 500) -> FastAPI:
    app = FastAPI(title="Cartero dead letters", version="0.1.0")
    app.state.queues = queues
    app.state.key = key
    app.state.max_list = max_list
    install_problem_handlers(app)
    app.include_router(guarded)
    app.include_router(router)
    return app
