"""`python requirements.py [SERVICE]`: pip-installs what an image needs, read from pyproject.toml.

Every Dockerfile copies this file and pyproject.toml alone, before the code, so dependencies sit
in cached layers that a code change does not rebuild. Without SERVICE: what every service needs
(the same layer in every image); with it, that service's extra.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from typing import Any


def requirements(project: dict[str, Any], service: str | None) -> list[str]:
    if service is None:
        return list(project["dependencies"])
    # An extra may name other extras of the project itself; those are not for an image.
    return [
        requirement
        for requirement in project["optional-dependencies"][service]
        if not requirement.startswith("cartero")
    ]


def main() -> int:
    with open("pyproject.toml", "rb") as file:
        project = tomllib.load(file)["project"]
    wanted = requirements(project, sys.argv[1] if len(sys.argv) > 1 else None)
    if not wanted:
        return 0
    return subprocess.call([sys.executable, "-m", "pip", "install", *wanted])


if __name__ == "__main__":
    sys.exit(main())
