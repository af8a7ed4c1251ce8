"""Wiring: settings, the broker publisher, routes, problem handlers, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cartero_common.amqp.publisher import AsyncPublisher
from cartero_common.clock import Clock, system_clock
from cartero_common.http import install_problem_handlers
from sender.config import Settings
from sender.metrics import CountRequests
from sender.routes import router
from sender.status_client import StatusClient
from sender.validator_client import ValidatorClient

TOKEN_SCHEME = {"type": "http", "scheme": "bearer", "description": "A token: app_…, grp_… or usr_…"}


def _with_token_scheme(app: FastAPI) -> None:
    """Declare the routes' bearer scheme in the OpenAPI document (no dependency declares it)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["CarteroToken"] = TOKEN_SCHEME
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None, clock: Clock = system_clock) -> FastAPI:
    settings = settings or Settings()
    publisher = AsyncPublisher(
        settings.amqp_url,
        timeout=settings.publish_timeout,
        ca_file=settings.amqp_ca_file,
        queue_type=settings.cartero_queue_type,
        heartbeat=settings.amqp_heartbeat_seconds,
        name="sender",
    )
    validator = ValidatorClient(
        settings.validator_url, settings.validator_service_key, timeout=settings.validator_timeout
    )

    logs = StatusClient(settings.consumer_logs_url, settings.consumer_logs_status_key, timeout=settings.status_timeout)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await publisher.start()
        yield
        # Late confirms still awaited are given a moment; past it, reconciliation settles them.
        if background:
            await asyncio.wait(set(background), timeout=settings.publish_timeout)
        await publisher.close()
        await validator.close()
        await logs.close()

    app = FastAPI(
        title="Cartero sender",
        version="0.1.0",
        summary="Queue SMS and email durably: token checked, 202 only once the broker confirmed.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.publisher = publisher
    app.state.validator = validator
    app.state.logs = logs
    app.state.clock = clock
    # Background work a request started and must not lose: late confirms, event retries.
    background: set[asyncio.Task[None]] = set()
    app.state.background = background
    install_problem_handlers(app)
    app.include_router(router)
    _with_token_scheme(app)

    app.add_middleware(CountRequests)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
