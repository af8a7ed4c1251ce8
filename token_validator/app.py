"""Wiring: settings, the database, routers, problem handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI
from sqlalchemy import Engine

from cartero_common.clock import Clock, system_clock
from cartero_common.db import make_sessionmaker
from cartero_common.http import install_problem_handlers
from token_validator import idempotency, panel_sessions, reconcile, refusals
from token_validator.api import (
    admin_owners,
    admin_records,
    admin_sessions,
    admin_tokens,
    admin_webhooks,
    service,
    webhook_targets,
)
from token_validator.api.common import no_nul_in_query
from token_validator.config import Settings
from token_validator.db import Database, open_database
from token_validator.moment import Moment
from token_validator.quota import PREPARED_STATEMENTS, SpendBatcher
from token_validator.rates import RateLimiter
from token_validator.rates.tally import FLUSH_EVERY_S

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 600.0


def prune_once(engine: Engine, now: datetime, *, refusal_retention: timedelta, sign_in_window: timedelta) -> None:
    """Forget idempotency keys older than 24 h, refusals older than `refusal_retention`, expired
    panel sessions and failed sign-ins out of `sign_in_window`; a failure of one is logged and
    tried again next round, and does not stop the others."""
    chores: list[tuple[str, Callable[[], int]]] = [
        ("idempotency keys", lambda: idempotency.prune(engine, now)),
        ("refusals", lambda: refusals.prune(engine, now, refusal_retention)),
        ("panel sessions and sign-in failures", lambda: panel_sessions.prune(engine, now, sign_in_window)),
    ]
    for what, chore in chores:
        try:
            removed = chore()
        except Exception as exc:  # noqa: BLE001 - try again next round
            log.warning(f"pruning old {what} failed", extra={"error": str(exc)})
            continue
        if removed:
            log.info(f"forgot old {what}", extra={"count": removed})


async def _prune_forever(engine: Engine, clock: Clock, refusal_retention: timedelta, sign_in_window: timedelta) -> None:
    while True:
        await asyncio.to_thread(
            prune_once, engine, clock(), refusal_retention=refusal_retention, sign_in_window=sign_in_window
        )
        await asyncio.sleep(PRUNE_EVERY_S)


async def _flush_rate_refusals_forever(rates: RateLimiter) -> None:
    while True:
        await asyncio.sleep(FLUSH_EVERY_S)
        try:
            await rates.flush()
        except Exception as exc:  # noqa: BLE001 - the tally is lost, the decisions stand
            log.warning("storing rate refusals failed", extra={"error": str(exc)})


async def _reconcile_forever(engine: Engine, clock: Clock, settings: Settings, zone: ZoneInfo) -> None:
    """Settle the uses kept for unconfirmed publishes, now and then (`token_validator.reconcile`)."""
    if not settings.consumer_logs_read_key:
        # The message log refuses every read without it: kept uses then stay kept, never wrongly
        # refunded, but never settled either.
        log.warning("CONSUMER_LOGS_READ_KEY is not set: reconciliation cannot read the message log")
    events_of = reconcile.message_log_lookup(settings.consumer_logs_url, read_key=settings.consumer_logs_read_key)
    after = timedelta(seconds=settings.reconcile_after_seconds)
    while True:
        try:
            report = await asyncio.to_thread(reconcile.reconcile, engine, events_of, Moment.at(clock(), zone), after)
            if report.settled or report.refunded:
                log.info("reconciled kept uses", extra={"settled": report.settled, "refunded": report.refunded})
        except Exception as exc:  # noqa: BLE001 - try again next round
            log.warning("reconciliation failed", extra={"error": str(exc)})
        await asyncio.sleep(settings.reconcile_every_seconds)


def create_app(settings: Settings | None = None, clock: Clock = system_clock, db: Database | None = None) -> FastAPI:
    settings = settings or Settings()
    db = db or open_database(
        settings.database_url,
        prepared=PREPARED_STATEMENTS,
        synchronous_commit=settings.token_validator_synchronous_commit,
    )
    engine = db.engine
    rates = RateLimiter(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        retention = timedelta(days=settings.refusal_retention_days)
        window = timedelta(seconds=settings.panel_signin_window_seconds)
        tasks = [
            asyncio.create_task(_prune_forever(engine, clock, retention, window)),
            asyncio.create_task(_flush_rate_refusals_forever(rates)),
        ]
        if settings.reconcile_after_seconds > 0:
            tasks.append(asyncio.create_task(_reconcile_forever(engine, clock, settings, ZoneInfo(settings.timezone))))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await rates.flush()

    app = FastAPI(
        title="Cartero token validator",
        version="0.1.0",
        summary="Bearer tokens, quotas and every decision about them; the admin API behind the panel.",
        lifespan=lifespan,
        # Request bodies are refused NUL by their models (`schemas.Strict`), queries here.
        dependencies=[Depends(no_nul_in_query)],
    )
    app.state.settings = settings
    app.state.db = db
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.clock = clock
    app.state.zone = ZoneInfo(settings.timezone)
    app.state.spender = SpendBatcher(db) if db.hot is not None else None
    app.state.rates = rates
    install_problem_handlers(app)
    app.include_router(service.router)
    app.include_router(webhook_targets.router)
    for module in (admin_owners, admin_tokens, admin_records, admin_sessions, admin_webhooks):
        app.include_router(module.router, prefix="/v1/admin")
    return app
