"""`python -m bench --soak --quick` runs the whole suite under paced load and writes every soak
figure, each process's memory and each window."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.support import ROOT, run_harness

FIGURES = [
    "soak_peak_rps",
    "soak_rate_rps",
    "soak_p99_first_minute_ms",
    "soak_p99_last_minute_ms",
    "soak_p99_last_vs_first",
    "soak_rss_growth_max",
    "soak_processes_lost",
    "soak_errors",
    "soak_unconsumed",
    "soak_drain_s",
]


@pytest.fixture(scope="module")
def results(amqp_url: str, pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    # amqp_url and pg_url only make sure the broker and Postgres are there (skip or fail as usual).
    output = tmp_path_factory.mktemp("soak") / "results-soak.json"
    # A progress line per window; the table, with its targets.
    return run_harness(["--soak", "--quick"], output, timeout=180, says="window 4/4", prints="soak_p99_last_vs_first")


def test_every_soak_figure_is_there_and_consistent(results: dict[str, object]) -> None:
    figures = results["figures"]
    assert isinstance(figures, dict)
    assert sorted(figures) == sorted(FIGURES)
    for name in FIGURES:
        value = figures[name]
        assert isinstance(value, float) and math.isfinite(value) and value >= 0, (name, value)
    assert figures["soak_peak_rps"] > 0
    assert figures["soak_rate_rps"] == pytest.approx(figures["soak_peak_rps"] / 2)
    assert figures["soak_p99_last_vs_first"] == pytest.approx(
        figures["soak_p99_last_minute_ms"] / figures["soak_p99_first_minute_ms"]
    )
    # At half the peak nothing is refused or lost, and every accepted message was consumed.
    assert figures["soak_errors"] == 0
    assert figures["soak_unconsumed"] == 0
    assert figures["soak_processes_lost"] == 0
    assert isinstance(results["accepted"], int) and results["accepted"] > 0


def test_memory_is_read_for_every_process_of_the_suite(results: dict[str, object]) -> None:
    rss = results["rss"]
    assert isinstance(rss, dict)
    for service in ("sender", "token_validator", "consumer_sms", "consumer_logs"):
        assert rss[service]["start_kib"] > 0, service
    # Two uvicorn workers each (the default), read as children of the process started.
    for service in ("sender", "token_validator"):
        workers = [label for label in rss if label.startswith(f"{service}/worker ")]
        assert len(workers) == 2, (service, sorted(rss))
    for entry in rss.values():
        assert entry["growth"] == pytest.approx((entry["end_kib"] - entry["start_kib"]) / entry["start_kib"])
    figures = results["figures"]
    assert isinstance(figures, dict)
    assert figures["soak_rss_growth_max"] == max(entry["growth"] for entry in rss.values())


def test_each_window_is_kept_and_the_tables_come_from_the_results(results: dict[str, object], tmp_path: Path) -> None:
    windows, settings = results["windows"], results["settings"]
    assert isinstance(windows, list) and isinstance(settings, dict)
    assert len(windows) == settings["windows"] == 4
    for window in windows:
        assert window["rps"] > 0 and window["p99_ms"] >= window["p50_ms"] > 0
        assert set(window["backlog"]) == {"cola_sms", "logs"}
    saved = tmp_path / "results-soak.json"
    saved.write_text(json.dumps(results))
    printed = subprocess.run(
        [sys.executable, "-m", "bench", "--soak", "--readme", "--output", str(saved)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| `soak_errors` | 0.00 | requests | met (target == 0) |" in printed
    assert "| `sender` |" in printed
    assert printed.count("\n| 4 |") == 1  # the last window's row
