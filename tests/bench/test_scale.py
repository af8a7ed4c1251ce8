"""`python -m bench --scale --quick` runs end to end and writes every scale figure; the cached
databases it builds are built once and only kept when whole."""

from __future__ import annotations

import math
import uuid

import psycopg2
import pytest

from bench import scale
from tests.bench.support import run_harness
from tests.support import PG_ADMIN_DSN
from token_validator.token_strings import kind_of

POSITIVE = [
    "validator_rps_1k_tokens",
    "validator_rps_1m_tokens",
    "validator_1m_vs_1k_tokens",
    "events_p99_ms_sqlite",
    "events_p99_ms_postgresql",
    "panel_tokens_p99_ms",
    "panel_usage_p99_ms",
    "panel_token_usage_p99_ms",
    "backlog_drain_msgs_per_s",
    "backlog_rss_after_tenth_mib",
    "backlog_peak_rss_mib",
]


@pytest.fixture(scope="module")
def results(amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    # amqp_url and pg_url only make sure the broker and Postgres are there (skip or fail as usual).
    output = tmp_path_factory.mktemp("bench-scale") / "results-scale.json"
    return run_harness(["--scale", "--quick"], output, timeout=300, says="draining 2,000 SMS")


def test_every_scale_figure_is_there_finite_and_positive(results: dict[str, object]) -> None:
    assert results["mode"] == "scale quick"
    figures = results["figures"]
    assert isinstance(figures, dict)
    for name in POSITIVE:
        value = figures[name]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (name, value)
    assert figures["validator_1m_vs_1k_tokens"] == pytest.approx(
        figures["validator_rps_1m_tokens"] / figures["validator_rps_1k_tokens"]
    )
    assert figures["backlog_msgs"] == 2_000
    assert figures["backlog_peak_rss_mib"] >= figures["backlog_rss_after_tenth_mib"]
    assert figures["backlog_rss_growth"] == pytest.approx(
        figures["backlog_peak_rss_mib"] / figures["backlog_rss_after_tenth_mib"] - 1
    )


def test_the_scale_tokens_have_a_tokens_shape() -> None:
    tokens = {scale.bench_token(index) for index in range(1_000)}
    assert len(tokens) == 1_000
    assert all(kind_of(token) == "application" for token in tokens)


def test_a_cached_database_is_built_once_and_a_partial_one_is_rebuilt(pg_url: str) -> None:
    name = f"{scale.PREFIX}_test_{uuid.uuid4().hex[:8]}"
    built: list[str] = []

    def build(partial: str) -> None:
        built.append(partial)
        with psycopg2.connect(PG_ADMIN_DSN, dbname=partial) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE TABLE marker (n int)")

    def failing(partial: str) -> None:
        built.append(partial)
        raise RuntimeError("interrupted")

    try:
        with pytest.raises(RuntimeError):
            scale.cached_database(name, failing)
        assert not scale_database_exists(name)  # an interrupted build is never taken for whole
        url = scale.cached_database(name, build)
        assert url.endswith(f"/{name}")
        assert scale.cached_database(name, build) == url
        assert built == [f"{name}_partial", f"{name}_partial"]
    finally:
        admin = psycopg2.connect(PG_ADMIN_DSN)
        admin.autocommit = True
        with admin.cursor() as cursor:
            for leftover in (name, f"{name}_partial"):
                cursor.execute(f'DROP DATABASE IF EXISTS "{leftover}" WITH (FORCE)')
        admin.close()


def scale_database_exists(name: str) -> bool:
    with psycopg2.connect(PG_ADMIN_DSN) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        return cursor.fetchone() is not None
