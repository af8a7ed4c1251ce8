"""The sender's metrics stay a closed set whatever paths and methods clients send: labels come
from the route that took the request (its template) or are `other`, never from the request."""

from __future__ import annotations

import random
import string
import time

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from sender.app import create_app
from sender.metrics import CountRequests
from tests.sender.conftest import sender_settings
from tests.support import served
from tests.token_validator.support import RunningValidator

REQUESTS = 5_000
ROUTES = ["/v1/sms", "/v1/email"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _series(page: str) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Every sample of the page by name and labels: one per series."""
    return {
        (sample.name, tuple(sorted(sample.labels.items())))
        for family in text_string_to_metric_families(page)
        for sample in family.samples
    }


def _random_path(rng: random.Random) -> str:
    segments = [
        "".join(rng.choices(string.ascii_letters + string.digits + "-._~%", k=rng.randint(1, 24)))
        for _ in range(rng.randint(1, 4))
    ]
    return "/v1/" + "/".join(segments)


def _random_method(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return rng.choice(METHODS)
    return "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 10)))  # a method nobody defined


def test_random_paths_and_methods_add_no_series(broker_url: str, validator: RunningValidator) -> None:
    rng = random.Random(13)
    with served(create_app(sender_settings(broker_url, validator))) as url, httpx.Client(base_url=url) as client:
        # Every label value these requests can reach, once: an unknown path, a known path with a
        # method it does not serve, and a known one without a token.
        for method, path in [("GET", "/v1/nothing-here")] + [(m, p) for m in ("GET", "POST") for p in ROUTES]:
            client.request(method, path)
        before = client.get("/metrics").text
        started = time.monotonic()
        statuses: set[int] = set()
        for n in range(REQUESTS):
            path = _random_path(rng) if n % 10 else rng.choice(ROUTES)
            statuses.add(client.request(_random_method(rng), path).status_code)
        took = time.monotonic() - started
        after = client.get("/metrics").text
    assert {404, 405} <= statuses, statuses
    assert _series(after) == _series(before)
    # Only the counters' digits may grow (a 5,000-series page was 2.97 MB).
    assert len(after) - len(before) < 200, len(after) - len(before)
    requests = {s for s in _series(after) if s[0] == "sender_requests_total"}
    # The sender's routes by template (earlier tests in this process may have called any of them).
    templates = {"/v1/sms", "/v1/email", "/v1/sms/batch", "/v1/email/batch", "/v1/messages/{message_id}", "other"}
    assert {dict(labels)["endpoint"] for _, labels in requests} <= templates
    assert took < 60, took


def test_a_route_with_a_parameter_is_counted_by_its_template() -> None:
    app = FastAPI()

    @app.get("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    app.add_middleware(CountRequests)
    client = TestClient(app)
    for thing_id in ("a", "b", "c" * 50):
        assert client.get(f"/v1/things/{thing_id}").status_code == 200
    assert client.post("/v1/things/d").status_code == 405
    assert client.get("/v1/elsewhere/e").status_code == 404

    def count(endpoint: str, code: str) -> float:
        return REGISTRY.get_sample_value("sender_requests_total", {"endpoint": endpoint, "code": code}) or 0.0

    assert count("/v1/things/{thing_id}", "200") >= 3
    assert count("/v1/things/{thing_id}", "405") >= 1
    assert count("/v1/things/a", "200") == 0 and count("/v1/elsewhere/e", "404") == 0
