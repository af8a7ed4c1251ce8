"""A real Prometheus (Debian's package) on a free port, with the stack's alert rules and a
scrape configuration derived from prometheus/prometheus.yml for this machine."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support import RABBIT_HOST, ROOT, free_port, stop_process, unavailable, wait_until

PRODUCTION = ROOT / "prometheus" / "prometheus.yml"
ALERTS = ROOT / "prometheus" / "alerts.yml"


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} (Debian package prometheus; local/install-test-deps.sh installs it)")
    assert path is not None
    return path


def test_config(port: int, down_port: int, services: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """prometheus.yml with this machine's targets: the local RabbitMQ for `rabbitmq`, this
    Prometheus for `prometheus`, `services` (job → targets) for the suite running here, and a
    closed port for every other job.

    The stack's broker sets prometheus.return_per_object_metrics, so its /metrics is per object;
    the machine's broker is not ours to reconfigure, so the same series come from
    /metrics/per-object. Docker discovery needs the stack's Docker API gate: a job discovered that
    way gets the static targets `services` names for it instead, or is left out.
    """
    services = services or {}
    config: dict[str, Any] = yaml.safe_load(PRODUCTION.read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str(ALERTS)]
    jobs = []
    for job in config["scrape_configs"]:
        name = job["job_name"]
        if "static_configs" not in job:
            if name not in services:
                continue
            # Its relabelling reads the discovery's labels, which static targets do not have.
            job = {k: v for k, v in job.items() if not k.endswith("_sd_configs") and k != "relabel_configs"}
        if name in services:
            targets = services[name]
        elif name == "rabbitmq":
            job["metrics_path"] = "/metrics/per-object"
            targets = [f"{RABBIT_HOST}:15692"]
        elif name == "prometheus":
            targets = [f"127.0.0.1:{port}"]
        else:
            targets = [f"127.0.0.1:{down_port}"]
        job["static_configs"] = [{"targets": targets}]
        jobs.append(job)
    # A target that is never there, so the target-down alert has something to fire on.
    jobs.append({"job_name": "unreachable", "static_configs": [{"targets": [f"127.0.0.1:{down_port}"]}]})
    config["scrape_configs"] = jobs
    return config


@dataclass(frozen=True)
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/api/v1/query", data={"query": expr}, timeout=10)
        body: dict[str, Any] = response.json()
        return body

    def query_range(self, expr: str, seconds: int = 30) -> dict[str, Any]:
        end = time.time()
        params = {"query": expr, "start": str(end - seconds), "end": str(end), "step": "1"}
        body: dict[str, Any] = httpx.post(f"{self.url}/api/v1/query_range", data=params, timeout=10).json()
        return body

    def result(self, expr: str) -> list[dict[str, Any]]:
        body = self.query(expr)
        assert body["status"] == "success", f"{expr}: {body.get('error')}"
        series: list[dict[str, Any]] = body["data"]["result"]
        return series

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.url}{path}", timeout=10).json()["data"]


@contextmanager
def running_prometheus(workdir: Path, services: dict[str, list[str]] | None = None) -> Iterator[Prometheus]:
    port, down_port = free_port(), free_port()
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(test_config(port, down_port, services)), encoding="utf-8")
    log = (workdir / "prometheus.log").open("wb")
    command = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = Prometheus(url=f"http://127.0.0.1:{port}", process=process)
    try:
        wait_until(lambda: httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200, timeout=30, what="ready")
        yield server
    finally:
        stop_process(process, timeout=10)
        log.close()
