"""The machine's Docker-API engine (Podman, rootful, host networking) from
`shared/scripts/container-engine`, and the service images built on it once per session."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass

import docker
from docker.errors import BuildError, DockerException
from docker.models.images import Image

from tests.support import ROOT, container_engine, unavailable

BASE_IMAGE = "python:3.11-slim"
# Per checkout, so two worktrees on one machine never overwrite each other's images.
TAG = hashlib.sha256(str(ROOT).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Built:
    service: str
    image: Image
    size: int
    base: int  # of the base image, shared by every image
    seconds: float


# Filled as images are built; printed at the end of the run (tests/deploy/conftest.py).
BUILT: dict[str, Built] = {}


def services_with_images() -> list[str]:
    """Every target of the root Dockerfile but its shared `base`: one per service."""
    return sorted(set(dockerfile_targets()) - {"base"})


def dockerfile_targets() -> dict[str, str]:
    """Each `FROM … AS <target>` stage of the root Dockerfile and its text."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    stages = re.split(r"^(?=FROM\s)", text, flags=re.MULTILINE)
    found: dict[str, str] = {}
    for stage in stages:
        named = re.match(r"FROM\s+\S+\s+AS\s+(\w+)", stage)
        if named:
            found[named.group(1)] = stage
    return found


def connect() -> docker.DockerClient:
    try:
        client = docker.DockerClient(base_url=container_engine(), timeout=900)
        client.ping()
    except DockerException as exc:
        unavailable(f"the Docker API ({exc})")
    return client


def build(client: docker.DockerClient, service: str) -> Built:
    """`docker build --target <service> .` from the repository root, as compose does."""
    if service in BUILT:
        return BUILT[service]
    started = time.monotonic()
    tag = f"cartero-test/{service}:{TAG}"
    try:
        previous = client.images.get(tag).id
    except DockerException:
        previous = None
    try:
        image, _ = client.images.build(path=str(ROOT), target=service, tag=tag, rm=True, forcerm=True, pull=False)
    except BuildError as exc:
        lines = [str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log]
        raise AssertionError(f"{service} image did not build: {exc.msg}\n{''.join(lines)[-4000:]}") from None
    if previous and previous != image.id:
        # The image this checkout built last time: drop it, or every code change leaves one behind.
        try:
            client.images.remove(previous, noprune=False)
        except DockerException:
            pass  # still used by a container or another tag
    size = int(image.attrs.get("Size", 0))
    built = Built(service, image, size, base_size(client), time.monotonic() - started)
    BUILT[service] = built
    return built


def base_size(client: docker.DockerClient) -> int:
    try:
        return int(client.images.get(BASE_IMAGE).attrs.get("Size", 0))
    except DockerException:
        return 0


def dockerfile_healthcheck(service: str) -> list[str] | None:
    """The exec-form command of the Dockerfile's HEALTHCHECK (Podman's default OCI image format
    drops it from the image, so it is read from the source and run by the test)."""
    text = dockerfile_targets()[service]
    found = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.MULTILINE)
    if not found:
        return None
    command: list[str] = json.loads(found.group(1))
    return command
