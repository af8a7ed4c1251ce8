"""`python -m bench --quick` runs end to end and writes every figure of the benchmark."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.support import ROOT, run_harness

POSITIVE = [
    "sender_rps",
    "sender_p50_ms",
    "sender_p99_ms",
    "sender_p99_ms_at_half_load",
    "seed_style_rps",
    "bare_publish_rps",
    "batch_msgs_per_s",
    "batch_vs_broker_limit",
    "broker_limit_msgs",
    "validator_rps",
    "validator_p99_ms",
    "consumer_drain_msgs",
    "seed_get_loop_msgs",
    "sender_vs_seed",
    "sender_vs_broker_limit",
    "drain_vs_get_loop",
    "status_p99_ms",
    "status_p99_ms_loaded",
    "sender_recovery_s",
    "consumer_recovery_s",
    "sender_vs_bare_publish",
    "sender_vs_request_ceiling",
    "sender_cpu_ms_sender",
    "sender_cpu_ms_validator",
    "sender_cpu_ms_rabbitmq",
    "sender_cpu_ms_total",
    "bare_cpu_ms_bare",
    "bare_cpu_ms_total",
    "batch_cpu_ms_total",
]


@pytest.fixture(scope="module")
def results(amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    # amqp_url and pg_url only make sure the broker and Postgres are there (skip or fail as usual).
    output = tmp_path_factory.mktemp("bench") / "results.json"
    return run_harness(["--quick"], output, timeout=120, says="validator decisions")


def test_every_figure_is_there_finite_and_positive(results: dict[str, object]) -> None:
    figures = results["figures"]
    assert isinstance(figures, dict)
    for name in POSITIVE:
        value = figures[name]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (name, value)
    assert figures["overspend"] == 0
    assert figures["sender_vs_seed"] == pytest.approx(figures["sender_rps"] / figures["seed_style_rps"])
    assert figures["drain_vs_get_loop"] == pytest.approx(figures["consumer_drain_msgs"] / figures["seed_get_loop_msgs"])
    assert figures["sender_vs_bare_publish"] == pytest.approx(figures["sender_rps"] / figures["bare_publish_rps"])
    assert figures["sender_vs_request_ceiling"] == pytest.approx(
        figures["sender_rps"] / (figures["broker_limit_msgs"] / 2)
    )
    # Measured from the broker's listener being back, so never 0, and never the whole timeout.
    for recovered in ("sender_recovery_s", "consumer_recovery_s"):
        assert 0 < figures[recovered] < 30, (recovered, figures[recovered])


def test_cpu_per_request_adds_up_over_the_parts(results: dict[str, object]) -> None:
    figures = results["figures"]
    assert isinstance(figures, dict)
    for prefix, parts in (
        ("sender", ("sender", "validator", "postgresql", "rabbitmq", "load")),
        ("batch", ("sender", "validator", "postgresql", "rabbitmq", "load")),
        ("bare", ("bare", "rabbitmq", "load")),
    ):
        # Medians of repetitions: with one repetition (--quick) the total is exactly the sum.
        assert figures[f"{prefix}_cpu_ms_total"] == pytest.approx(sum(figures[f"{prefix}_cpu_ms_{p}"] for p in parts))
    # The sender checks a token and confirms two messages; the bare peer confirms one.
    assert figures["sender_cpu_ms_total"] > figures["bare_cpu_ms_total"]


def test_the_run_states_its_machine_versions_load_and_settings(results: dict[str, object]) -> None:
    assert results["mode"] == "quick"
    machine, versions, settings, load = (results[k] for k in ("machine", "versions", "settings", "load_average"))
    assert isinstance(machine, dict) and machine["cores"] and machine["cpu"] and machine["python"]
    assert isinstance(versions, dict) and versions["rabbitmq"] != "unknown" and versions["postgresql"] != "unknown"
    assert isinstance(settings, dict)
    for key in ("sender_workers", "validator_workers", "connections", "repetitions", "phase_seconds"):
        assert settings[key] > 0
    assert isinstance(load, dict) and len(load["before"]) == 3 and len(load["after"]) == 3


def test_readme_table_comes_from_the_results(results: dict[str, object], tmp_path: Path) -> None:
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    printed = subprocess.run(
        [sys.executable, "-m", "bench", "--readme", "--output", str(saved)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures = results["figures"]
    assert isinstance(figures, dict)
    assert f"| `sender_rps` | {figures['sender_rps']:,.2f} |" in printed
    assert "| `overspend` | 0.00 | uses | met" in printed
