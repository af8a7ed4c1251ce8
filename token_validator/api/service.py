"""The senders' side: `POST /v1/validate` (and `/v1/validate/batch`), refunds and idempotency confirmations, health."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import text

from cartero_common.http import Problem, field_errors
from cartero_common.metrics import LATENCY_BUCKETS
from token_validator import idempotency, reconcile, usage
from token_validator.counters import Limit
from token_validator.db import Database
from token_validator.deps import SERVICE_SECURITY, EngineDep, MomentDep, ServiceAuth, check_service_key, moment_of
from token_validator.idempotency import IdempotencyRequest
from token_validator.identify import identify
from token_validator.moment import Moment
from token_validator.quota import Check, Decision, decide
from token_validator.schemas import Strict
from token_validator.token_strings import KNOWN_ACTIONS, MAX_TOKEN_LENGTH

router = APIRouter()

DECISIONS = Counter("validator_decisions_total", "Validation decisions, by code.", ["code"])
DECISION_SECONDS = Histogram("validator_decision_seconds", "Time to decide one validation.", buckets=LATENCY_BUCKETS)

MAX_BATCH = 256
UsageId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The `usage_id` of an allowed validation.")]
_PRINTABLE = r"^[\x21-\x7e]+$"


class IdempotencyIn(Strict):
    key: str = Field(min_length=1, max_length=255, pattern=_PRINTABLE)
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of what the request asks for.")
    response: dict[str, Any] = Field(description="The answer to give again for this key (status and body).")

    @field_validator("response")
    @classmethod
    def _small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > 8192:
            raise ValueError("at most 8 KiB")
        return value


class ValidateRequest(Strict):
    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)
    action: str = Field(max_length=64, description=f"One of: {', '.join(sorted(KNOWN_ACTIONS))}.")
    request_id: str | None = Field(None, max_length=128)
    cost: int = Field(1, ge=0, le=1000, description="Uses to spend; 0 checks without spending.")
    client_ip: str | None = Field(None, max_length=64, description="The end client's address, for refusals.")
    idempotency: IdempotencyIn | None = None

    @field_validator("action")
    @classmethod
    def _known(cls, action: str) -> str:
        if action not in KNOWN_ACTIONS:
            raise ValueError(f"unknown action; known: {', '.join(sorted(KNOWN_ACTIONS))}")
        return action


class CounterOut(BaseModel):
    scope: str
    id: int
    restriction: str
    limit: int | None
    remaining: int | None


class RateOut(BaseModel):
    limit: int
    per: str = Field(description="`second` or `minute`: fixed windows aligned to Unix time.")
    remaining: int = Field(description="This validator process's best knowledge of the uses left in the window.")
    reset_in: int = Field(description="Seconds to the window's end, rounded up.")


class IdempotencyOut(BaseModel):
    outcome: str = Field(description="new | replay | retry | in_progress | mismatch")
    response: dict[str, Any] | None


class ValidateBatch(Strict):
    checks: list[ValidateRequest] = Field(min_length=1, max_length=MAX_BATCH)


class ValidateResponse(BaseModel):
    allowed: bool
    code: str
    token_id: int | None
    kind: str | None
    prefix: str | None
    owner: str | None
    owner_ref: str | None = Field(
        description="`<kind>:<id>` of the token's owner (`application:12`); the sender records it with each message."
    )
    limit: int | None
    remaining: int | None
    reset_at: datetime | None
    reset_in: int | None = Field(description="Seconds until reset_at (the Retry-After of a monthly refusal).")
    usage_id: str | None
    counters: list[CounterOut]
    idempotency: IdempotencyOut | None
    rate: RateOut | None = Field(
        None, description="The binding rate limit; `limit`/`remaining`/`reset_in` tell it when it binds more."
    )


class ValidateBatchResponse(BaseModel):
    answers: list[ValidateResponse]


Body = TypeVar("Body", bound=BaseModel)


def _answer(decision: Decision, zone: Any, seconds_to: Any) -> dict[str, Any]:
    limit = decision.limit
    reset_at = limit.reset_at if limit else None
    claim = decision.idempotency
    rate = decision.rate
    rate_out = None
    if rate is not None:
        per = "second" if rate.per_seconds == 1 else "minute"
        rate_out = {"limit": rate.limit, "per": per, "remaining": rate.remaining, "reset_in": seconds_to(rate.reset_at)}
        # One RateLimit-* set for the sender: the limit with fewest uses left (the rate on a rate refusal).
        if limit is None or rate.remaining < limit.remaining:
            limit = Limit(rate.limit, rate.remaining, rate.reset_at)
            reset_at = rate.reset_at
    return {
        "allowed": decision.allowed,
        "code": decision.code,
        "token_id": decision.token_id,
        "kind": decision.kind,
        "prefix": decision.prefix,
        "owner": decision.owner,
        "owner_ref": decision.owner_ref,
        "limit": limit.limit if limit else None,
        "remaining": limit.remaining if limit else None,
        "reset_at": reset_at.astimezone(zone).isoformat() if reset_at else None,
        "reset_in": seconds_to(reset_at),
        "usage_id": decision.usage_id,
        "counters": decision.counters,
        "idempotency": None if claim is None else {"outcome": claim.outcome, "response": claim.response},
        "rate": rate_out,
    }


async def _validate_one(body: ValidateRequest, request: Request, moment: Moment) -> dict[str, Any]:
    started = time.perf_counter()
    state = request.app.state
    db: Database = state.db
    check = Check(
        token=body.token,
        action=body.action,
        cost=body.cost,
        request_id=body.request_id,
        client_ip=body.client_ip or (request.client.host if request.client else None),
        idempotency=None
        if body.idempotency is None
        else IdempotencyRequest(body.idempotency.key, body.idempotency.fingerprint, body.idempotency.response),
    )
    decision = await decide(db, state.spender, check, moment, state.rates)
    DECISIONS.labels(decision.code).inc()
    DECISION_SECONDS.observe(time.perf_counter() - started)
    # Built by hand: on the hot path a second validation of our own answer costs more than it checks.
    return _answer(decision, state.zone, moment.seconds_to)


def _served_directly(model: type[Body], serve: Callable[[Body, Request], Awaitable[Response]]) -> type[APIRoute]:
    """A route class for the hot path: documented from the endpoint's signature like any route,
    but served without FastAPI's per-request dependency solving, which cost a quarter of a
    decision's CPU (cProfile). The key is checked, then the body parsed, as the dependencies
    would."""

    class ServedDirectly(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            async def handle(request: Request) -> Response:
                await check_service_key(request)
                try:
                    body = model.model_validate_json(await request.body())
                except ValidationError as exc:
                    raise Problem(
                        422, "invalid_request", "The request has invalid fields.", errors=field_errors(exc.errors())
                    ) from None
                return await serve(body, request)

            return handle

    return ServedDirectly


_UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong service credential (VALIDATOR_SERVICE_KEY)."}
}
Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Response]])


def _post_served_directly(path: str, model: type[BaseModel], **options: Any) -> Callable[[Endpoint], Endpoint]:
    """`@router.post`, for an endpoint served by `_served_directly` (FastAPI's decorators take no
    route class), with the service credential documented."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            openapi_extra={"security": SERVICE_SECURITY},
            responses=_UNAUTHORIZED,
            route_class_override=_served_directly(model, endpoint),
            **options,
        )
        return endpoint

    return register


@_post_served_directly(
    "/v1/validate",
    ValidateRequest,
    response_model=ValidateResponse,
    summary="Decide whether a token may do an action now, and spend its quota if so",
)
async def validate(body: ValidateRequest, request: Request) -> Response:
    """Served by `_served_directly`; its signature is what the OpenAPI document shows."""
    return JSONResponse(await _validate_one(body, request, moment_of(request)))


@_post_served_directly(
    "/v1/validate/batch",
    ValidateBatch,
    response_model=ValidateBatchResponse,
    summary="Several validations in one request: answers in the order of the checks",
    description="Each check is decided as `POST /v1/validate` decides it alone; the sender sends the "
    "validations that arrive while its previous request is in flight together.",
)
async def validate_batch(body: ValidateBatch, request: Request) -> Response:
    """Served by `_served_directly`; its signature is what the OpenAPI document shows."""
    moment = moment_of(request)
    # Concurrently, so the checks of one token go to the database together (`quota.batcher`).
    answers = await asyncio.gather(*(_validate_one(check, request, moment) for check in body.checks))
    return JSONResponse({"answers": answers})


class IdentifyRequest(Strict):
    token: str = Field(min_length=1, max_length=MAX_TOKEN_LENGTH)


class IdentifyResponse(BaseModel):
    code: str = Field(description="`ok`, `invalid_token`, `token_revoked`, `token_expired` or `subject_disabled`.")
    owner_ref: str | None = Field(description="`<kind>:<id>` of the token's owner, when `code` is `ok`.")
    token_id: int | None
    prefix: str | None


@router.post(
    "/v1/identify",
    dependencies=[ServiceAuth],
    response_model=IdentifyResponse,
    summary="Whose token this is, if it may be used now: nothing is checked against an action or spent",
    description="What a sender asks before it shows a caller a message's status: only the messages of"
    " the token's owner are shown. No use and no refusal is recorded.",
)
async def identify_token(body: IdentifyRequest, request: Request, moment: MomentDep) -> dict[str, Any]:
    db: Database = request.app.state.db
    found = await run_in_threadpool(identify, db, body.token, moment)
    return {"code": found.code, "owner_ref": found.owner_ref, "token_id": found.token_id, "prefix": found.prefix}


@router.post(
    "/v1/usage/{usage_id}/refund",
    dependencies=[ServiceAuth],
    summary="Give back a counted use (the sender could not publish); idempotent",
)
def refund(usage_id: UsageId, engine: EngineDep, moment: MomentDep) -> dict[str, str]:
    outcome = usage.refund(engine, usage_id, moment)
    if outcome == "unknown":
        raise Problem(404, "not_found", "No usage with this id.")
    return {"usage_id": usage_id, "status": outcome}


@router.post(
    "/v1/usage/{usage_id}/confirm",
    dependencies=[ServiceAuth],
    summary="The broker confirmed the use's message: its Idempotency-Key replays the stored answer,"
    " and a use kept unconfirmed is settled",
)
def confirm(usage_id: UsageId, engine: EngineDep) -> dict[str, str]:
    settled = reconcile.settle(engine, usage_id)
    if not idempotency.confirm(engine, usage_id) and not settled:
        raise Problem(404, "not_found", "No idempotency key or unconfirmed use is waiting on this usage.")
    return {"usage_id": usage_id, "status": "confirmed"}


class UnconfirmedIn(Strict):
    message_id: str = Field(min_length=1, max_length=64, pattern=_PRINTABLE)


@router.post(
    "/v1/usage/{usage_id}/unconfirmed",
    dependencies=[ServiceAuth],
    summary="The broker may hold the use's message (no confirm in time): keep the use until it is settled",
    description="The use stays counted. It is settled by the broker's late answer (confirm or refund),"
    " by a retry with the same Idempotency-Key, or by reconciliation against the message log.",
)
def unconfirmed(usage_id: UsageId, body: UnconfirmedIn, engine: EngineDep, moment: MomentDep) -> dict[str, str]:
    if not reconcile.mark(engine, usage_id, body.message_id, moment):
        raise Problem(404, "not_found", "No counted use with this id.")
    return {"usage_id": usage_id, "status": "unconfirmed"}


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
def readyz(engine: EngineDep) -> Response:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        ready = True
    except Exception:  # noqa: BLE001 - any failure means "not ready"
        ready = False
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": {"database": "ok" if ready else "unreachable"}},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
