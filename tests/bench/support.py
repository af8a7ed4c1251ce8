"""Running the harness as a user does: `python -m bench` in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_harness(
    options: list[str], output: Path, *, timeout: float, says: str, prints: str = "figure"
) -> dict[str, object]:
    """`python -m bench <options> --output <output>`: it must succeed, print the progress line
    containing `says` and a table containing `prints`; its results as written."""
    run = subprocess.run(
        [sys.executable, "-m", "bench", *options, "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert says in run.stderr  # a progress line per phase
    assert prints in run.stdout  # the table, with its targets
    loaded: dict[str, object] = json.loads(output.read_text())
    return loaded
