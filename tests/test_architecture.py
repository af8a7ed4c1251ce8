"""The house rules on imports: services import the shared package and never each other, the
shared package imports no service (contracts in pyproject.toml, checked by import-linter), and no
module imports itself through others (no cycle), not even for type checking."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from tests.support import ROOT

PACKAGES = (
    "cartero_common",
    "sender",
    "token_validator",
    "token_panel",
    "consumer_sms",
    "consumer_email",
    "consumer_logs",
    "dead_letters",
    "monitor",
    "docker_gate",
    "bench",
)


def test_the_import_contracts_hold() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" in result.stdout and "0 broken" in result.stdout, result.stdout[-2000:]


def test_no_import_cycle_anywhere() -> None:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    modules = sorted(graph.modules)
    cycles = [
        (first, second)
        for index, first in enumerate(modules)
        for second in modules[index + 1 :]
        if graph.chain_exists(importer=first, imported=second) and graph.chain_exists(importer=second, imported=first)
    ]
    assert not cycles, f"modules that import each other (through others or for type checking): {cycles}"


def test_the_consumers_shared_code_runs_without_the_senders_libraries() -> None:
    """The consumer images install no aio-pika (requirements/consumer_*.txt): what they import of
    the shared package must not reach it."""
    imports = "import cartero_common.amqp, cartero_common.consume.loop, cartero_common.settings"
    check = f"import sys; {imports}; print(sorted({{'aio_pika', 'aiormq'}} & set(sys.modules)))"
    found = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", found.stdout
