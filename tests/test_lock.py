"""The lock files (requirements/*.txt) agree with pyproject.toml: `make lock` would change nothing.

The check re-resolves into a copy of the lock (uv keeps the versions a lock file already pins),
so it fails only when pyproject.toml asks for something the lock does not hold, not when a new
release appears upstream.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support import ROOT

LOCK = ROOT / "requirements"


def test_the_lock_agrees_with_pyproject(tmp_path: Path) -> None:
    copy = tmp_path / "requirements"
    shutil.copytree(LOCK, copy)
    subprocess.run(
        [str(ROOT / "local" / "lock.sh")],
        env={**os.environ, "LOCK_DIR": str(copy)},
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    for locked in sorted(LOCK.glob("*.txt")):
        # The annotations name the constraint file by the path it was given: the copy's, here.
        again = (copy / locked.name).read_text().replace(str(copy), "requirements")
        assert again == locked.read_text(), f"{locked.name} is stale: run `make lock`"
    assert {p.name for p in copy.glob("*.txt")} == {p.name for p in LOCK.glob("*.txt")}


def test_every_install_pins_by_hash() -> None:
    for locked in sorted(LOCK.glob("*.txt")):
        pins = [line for line in locked.read_text().splitlines() if "==" in line and not line.startswith("#")]
        assert pins, locked.name
        text = locked.read_text()
        assert text.count("--hash=sha256:") >= len(pins), f"{locked.name} has a pin without a hash"
    for installer in ("Makefile", "Dockerfile"):
        text = (ROOT / installer).read_text()
        assert "--require-hashes -r" in text and "pip install -q -e '.[" not in text, installer
