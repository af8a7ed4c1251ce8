"""The sender asks the validator in batches: concurrent requests share validator round trips, each
still gets its own decision, and an older validator without the batch endpoint still works."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiohttp import web

from sender.app import create_app
from sender.metrics import VALIDATOR_BATCH_SIZE
from sender.validator_client import ValidatorClient, ValidatorUnavailable
from tests.sender.conftest import sender_settings
from tests.support import drain, free_port
from tests.token_validator.support import SERVICE_KEY, RunningValidator

SENDS = 60


def validator_requests() -> tuple[float, float]:
    """(requests to the validator, validations in them) so far in this process."""
    samples = {s.name: s.value for metric in VALIDATOR_BATCH_SIZE.collect() for s in metric.samples}
    return samples["sender_validator_batch_size_count"], samples["sender_validator_batch_size_sum"]


def test_concurrent_sends_share_validator_requests_and_each_spends_its_own_use(
    broker_url: str, validator: RunningValidator
) -> None:
    token, token_id = validator.tokens.make("application", "batched", restriction="max_uses", limit=40)
    requests_before, validations_before = validator_requests()

    async def send_all() -> list[httpx.Response]:
        app = create_app(sender_settings(broker_url, validator))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {token}"}
            async with httpx.AsyncClient(transport=transport, base_url="http://sender", headers=headers) as client:
                body = {"mensaje": "hola", "telefono": "+34600111222"}
                return await asyncio.gather(*(client.post("/v1/sms", json=body) for _ in range(SENDS)))

    answers = asyncio.run(send_all())
    accepted = [a for a in answers if a.status_code == 202]
    refused = [a for a in answers if a.status_code != 202]
    assert len(accepted) == 40 and validator.tokens.used(token_id) == 40
    assert {(a.status_code, a.json()["code"]) for a in refused} == {(403, "usage_exhausted")}
    assert len({a.json()["id"] for a in accepted}) == 40
    assert sorted(json.loads(body)["id"] for _, body in drain(broker_url, "cola_sms")) == sorted(
        a.json()["id"] for a in accepted
    )
    requests, validations = validator_requests()
    assert validations - validations_before == SENDS
    assert requests - requests_before < SENDS  # they really went together


Handler = Callable[[web.Request], Awaitable[web.Response]]


@asynccontextmanager
async def stub_validator(path: str, handler: Handler) -> AsyncIterator[str]:
    """A validator that only answers `path` (another release, or a broken one); yields its URL."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def older_validator(answers: dict[str, Any]) -> AsyncIterator[tuple[str, list[str]]]:
    """A validator of an earlier release: `/v1/validate` only."""
    paths: list[str] = []

    async def validate(request: web.Request) -> web.Response:
        paths.append(request.path)
        assert request.headers["Authorization"] == f"Bearer {SERVICE_KEY}"
        return web.json_response(answers[(await request.json())["token"]])

    async with stub_validator("/v1/validate", validate) as url:
        yield url, paths


def test_a_validator_without_the_batch_endpoint_is_asked_one_check_at_a_time() -> None:
    def answer(allowed: bool, code: str) -> dict[str, Any]:
        return {"allowed": allowed, "code": code, "token_id": 1, "kind": "application", "prefix": "app_test"}

    async def scenario() -> None:
        answers = {"good": answer(True, "ok"), "spent": answer(False, "usage_exhausted")}
        async with older_validator(answers) as (url, paths):
            client = ValidatorClient(url, SERVICE_KEY)
            try:
                verdicts = await asyncio.gather(
                    *(
                        client.validate(token=token, action="sms.send", request_id=str(i), client_ip=None)
                        for i, token in enumerate(["good", "spent", "good"])
                    )
                )
                assert [(v.allowed, v.code) for v in verdicts] == [
                    (True, "ok"),
                    (False, "usage_exhausted"),
                    (True, "ok"),
                ]
                again = await client.validate(token="good", action="sms.send", request_id="4", client_ip=None)
                assert again.allowed
            finally:
                await client.close()
            # Once told there is no batch endpoint, the client stops asking for it.
            assert paths == ["/v1/validate"] * 4

    asyncio.run(scenario())


def test_a_validator_that_answers_a_batch_wrongly_is_unavailable_for_each_check() -> None:
    async def scenario() -> None:
        async def wrong(request: web.Request) -> web.Response:
            checks = (await request.json())["checks"]
            return web.json_response({"answers": [{"allowed": True, "code": "ok"}] * (len(checks) + 1)})

        async with stub_validator("/v1/validate/batch", wrong) as url:
            client = ValidatorClient(url, SERVICE_KEY, timeout=2)
            try:
                results = await asyncio.gather(
                    *(
                        client.validate(token="t", action="sms.send", request_id=str(i), client_ip=None)
                        for i in range(5)
                    ),
                    return_exceptions=True,
                )
            finally:
                await client.close()
        # Never an answer meant for another request: every check of a misanswered batch fails closed.
        assert all(isinstance(r, ValidatorUnavailable) for r in results), results

    asyncio.run(scenario())
