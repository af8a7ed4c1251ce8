"""checkov (its own virtualenv, `.venv/checkov`, from requirements/checkov.txt) over the Dockerfile
and, once they exist, the Kubernetes manifests in deploy/kubernetes/: no failed check, every
skipped one named with its reason in .checkov.yaml, and no call out to its vendor."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT, unavailable

CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
CONFIG = ROOT / ".checkov.yaml"
KUBERNETES = ROOT / "deploy" / "kubernetes"


def checkov(*targets: str, cwd: Path = ROOT) -> list[dict[str, Any]]:
    """checkov's JSON report, one entry per framework. Run without a network namespace of its own
    where the machine allows it (root and util-linux' unshare): a check that wanted its vendor's
    API would fail at once instead of going out, and none may hang."""
    if not CHECKOV.is_file():
        unavailable(f"checkov at {CHECKOV} (`make checkov` or `make test` installs it)")
    command = [str(CHECKOV), "--config-file", str(CONFIG), "--output", "json", *targets]
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0:
        command = [unshare, "--net", *command]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=180)
    # Exit 1 means failed checks: the report says which.
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


def targets() -> list[list[str]]:
    """One run per target: given --file and --directory together, checkov scans the directory only."""
    runs = [["--file", "Dockerfile"]]
    if KUBERNETES.is_dir():
        runs.append(["--directory", str(KUBERNETES.relative_to(ROOT))])
    return runs


def test_checkov_finds_no_failed_check() -> None:
    reports = [report for target in targets() for report in checkov(*target)]
    by_framework = {r["check_type"]: r for r in reports}
    assert "dockerfile" in by_framework, by_framework.keys()
    if KUBERNETES.is_dir():
        assert "kubernetes" in by_framework
    failed = [
        f"{check['check_id']} {check['check_name']} ({check['file_path']}:{check['file_line_range']})"
        for report in reports
        for check in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks (fix them, or skip one in .checkov.yaml with its reason):\n" + "\n".join(
        failed
    )
    assert sum(r["summary"]["passed"] for r in reports) > 50, "checkov ran almost no check"
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports), [r["summary"] for r in reports]
    skipped = {check["check_id"] for report in reports for check in report["results"]["skipped_checks"]}
    assert skipped <= set(skip_list()), f"skipped outside .checkov.yaml: {skipped - set(skip_list())}"


def skip_list() -> list[str]:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["skip-download"] is True, "checkov must not download from its vendor"
    return list(config.get("skip-check") or [])


def test_every_skipped_check_is_named_with_its_reason_in_one_place() -> None:
    text = CONFIG.read_text()
    for check in skip_list():
        assert re.search(rf"^\s*#\s*{re.escape(check)}:\s*\S.{{10,}}$", text, re.MULTILINE), (
            f"{check} is skipped in .checkov.yaml without a `# {check}: reason` line"
        )
    inline = [path for path in ROOT.rglob("Dockerfile*") if "checkov:skip" in path.read_text(errors="replace")]
    if KUBERNETES.is_dir():
        inline += [p for p in KUBERNETES.rglob("*.y*ml") if "checkov:skip" in p.read_text()]
    assert not inline, f"inline checkov skips (list them in .checkov.yaml instead): {inline}"


def test_checkov_fails_a_dockerfile_that_runs_as_root(tmp_path: Path) -> None:
    """The same run on a careless Dockerfile: it does fail, so the zero above means something."""
    (tmp_path / "Dockerfile").write_text("FROM python:latest\nADD . /app\nRUN pip install -r /app/req.txt\n")
    reports = checkov("--file", "Dockerfile", cwd=tmp_path)
    failed = {check["check_id"] for report in reports for check in report["results"]["failed_checks"]}
    assert {"CKV_DOCKER_3", "CKV_DOCKER_4", "CKV_DOCKER_7"} <= failed, failed
