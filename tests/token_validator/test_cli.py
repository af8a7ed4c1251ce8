"""`python -m token_validator …` as scripts and `make run` call it."""

from __future__ import annotations

import io
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support import ROOT, python_env
from tests.token_validator.conftest import ADMIN, SERVICE
from tests.token_validator.support import settings_for
from token_validator.__main__ import main, run_migrations
from token_validator.app import create_app


def _run(database_url: str, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "token_validator", *args],
        cwd=ROOT,
        env=python_env(DATABASE_URL=database_url, LOG_LEVEL="WARNING", **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _main(monkeypatch: pytest.MonkeyPatch, database_url: str, *args: str, stdin: str = "") -> int:
    """The same command in this process (argument checks need no new interpreter)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(list(args))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/cli.db"
    run_migrations(settings_for(url))
    return url


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    assert _run(url, "migrate").returncode == 0
    assert _run(url, "migrate").returncode == 0


def test_create_token_prints_it_last_and_creates_the_owners(sqlite_url: str) -> None:
    made = _run(
        sqlite_url,
        "create-token",
        "--kind",
        "user",
        "--owner",
        "ana",
        "--group",
        "ventas",
        "--actions",
        "sms.send,email.send",
        "--monthly",
        "100",
        "--expires",
        "2099-01-01T00:00:00",
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("usr_") and len(token) >= 36 and " " not in token
    assert token not in made.stderr
    with TestClient(create_app(settings_for(sqlite_url))) as api:
        answer = api.post("/v1/validate", json={"token": token, "action": "email.send"}, headers=SERVICE).json()
        assert answer["allowed"] and answer["owner"] == "ana" and answer["limit"] == 100
        user = api.get("/v1/admin/users", params={"q": "ana"}, headers=ADMIN).json()["items"][0]
        assert [g["name"] for g in user["groups"]] == ["ventas"]
        assert api.get("/v1/admin/audit", params={"actor": "cli"}, headers=ADMIN).json()["total"] >= 3
    again = _run(sqlite_url, "create-token", "--kind", "user", "--owner", "ana", "--actions", "*", "--max-uses", "5")
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] != token


@pytest.mark.parametrize(
    "args",
    [
        ["--kind", "application", "--owner", "x", "--actions", "sms.fly"],
        ["--kind", "application", "--owner", "x", "--actions", "sms.send", "--max-uses", "-1"],
        ["--kind", "application", "--owner", "x", "--actions", "sms.send", "--monthly", "0"],
        ["--kind", "application", "--owner", "x", "--actions", "sms.send", "--max-uses", "1", "--monthly", "1"],
        ["--kind", "application", "--owner", "x", "--actions", "sms.send", "--expires", "2001-01-01"],
        ["--kind", "application", "--owner", "x", "--actions", "sms.send", "--expires", "soon"],
        ["--kind", "group", "--owner", "x", "--group", "y", "--actions", "sms.send"],
        ["--kind", "robot", "--owner", "x", "--actions", "sms.send"],
        ["--kind", "application", "--owner", "bad\tname", "--actions", "sms.send"],
    ],
)
def test_create_token_refuses_bad_arguments(
    sqlite_url: str, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = _main(monkeypatch, sqlite_url, "create-token", *args)
    except SystemExit as exit_:  # argparse's own refusals
        code = int(exit_.code or 0)
    assert code == 2
    assert capsys.readouterr().err.strip()


def test_create_admin_reads_the_password_from_stdin(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _run(sqlite_url, "create-admin", "--username", "marta", stdin="a long enough secret\n").returncode == 0
    assert _main(monkeypatch, sqlite_url, "create-admin", "--username", "marta", stdin="a long enough secret\n") == 2
    assert _main(monkeypatch, sqlite_url, "create-admin", "--username", "pepe", stdin="short\n") == 2
    with TestClient(create_app(settings_for(sqlite_url))) as api:
        body = {"username": "marta", "password": "a long enough secret"}
        assert api.post("/v1/admin/sessions", json=body, headers=ADMIN).status_code == 200


def test_first_run_happens_once_and_keeps_its_secrets_private(sqlite_url: str, tmp_path: Path) -> None:
    output = tmp_path / "var" / "first-run.txt"
    first = _run(sqlite_url, "first-run", "--output", str(output))
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(output.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert set(values) == {"ADMIN_USERNAME", "ADMIN_PASSWORD", "DEMO_TOKEN"}
    assert values["DEMO_TOKEN"] in first.stdout  # printed once
    second = _run(sqlite_url, "first-run", "--output", str(output))
    assert second.returncode == 0 and values["DEMO_TOKEN"] not in second.stdout
    assert dict(line.split("=", 1) for line in output.read_text().splitlines()) == values
    with TestClient(create_app(settings_for(sqlite_url))) as api:
        for action in ("sms.send", "email.send"):
            answer = api.post("/v1/validate", json={"token": values["DEMO_TOKEN"], "action": action}, headers=SERVICE)
            assert answer.json()["allowed"] and answer.json()["limit"] is None
        body = {"username": values["ADMIN_USERNAME"], "password": values["ADMIN_PASSWORD"]}
        assert api.post("/v1/admin/sessions", json=body, headers=ADMIN).status_code == 200


def test_serving_needs_two_distinct_real_keys(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for service, admin in (("", ""), ("short", "x" * 20), ("k" * 20, "k" * 20)):
        monkeypatch.setenv("VALIDATOR_SERVICE_KEY", service)
        monkeypatch.setenv("VALIDATOR_ADMIN_KEY", admin)
        assert _main(monkeypatch, sqlite_url, "serve") == 2
        assert "VALIDATOR_" in capsys.readouterr().err


def test_create_token_and_set_rate_give_a_rate_limit(sqlite_url: str) -> None:
    made = _run(
        sqlite_url, "create-token", "--kind", "application", "--owner", "rated", "--actions", "*", "--rate", "2/minute"
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    with TestClient(create_app(settings_for(sqlite_url))) as api:
        codes = [
            api.post("/v1/validate", json={"token": token, "action": "sms.send"}, headers=SERVICE).json()["code"]
            for _ in range(3)
        ]
        assert codes == ["ok", "ok", "rate_limited"]
        token_id = api.get("/v1/admin/tokens", headers=ADMIN).json()["items"][0]["id"]
    assert _run(sqlite_url, "set-rate", "--token-id", str(token_id), "--rate", "50/second").returncode == 0
    _run(sqlite_url, "create-token", "--kind", "user", "--owner", "eva", "--group", "ventas", "--actions", "*")
    grouped = _run(sqlite_url, "set-rate", "--group", "ventas", "--rate", "10/minute")
    assert grouped.returncode == 0, grouped.stderr
    assert "at most 10 per minute" in grouped.stdout
    with TestClient(create_app(settings_for(sqlite_url))) as api:
        shown = api.get(f"/v1/admin/tokens/{token_id}", headers=ADMIN).json()
        assert shown["rate"] == {"limit": 50, "per": "second"}
        group = api.get("/v1/admin/groups", params={"q": "ventas"}, headers=ADMIN).json()["items"][0]
        assert group["rate"] == {"limit": 10, "per": "minute"}
        trail = api.get("/v1/admin/audit", params={"actor": "cli", "action": "token.rate"}, headers=ADMIN).json()
        assert [e["details"]["rate"] for e in trail["items"]] == [
            {"limit": 50, "per": "second"},
            {"limit": 2, "per": "minute"},
        ]
    assert _run(sqlite_url, "set-rate", "--group", "ventas", "--clear").returncode == 0
    with TestClient(create_app(settings_for(sqlite_url))) as api:
        group = api.get("/v1/admin/groups", params={"q": "ventas"}, headers=ADMIN).json()["items"][0]
        assert group["rate"] is None


@pytest.mark.parametrize(
    "args",
    [
        ["create-token", "--kind", "application", "--owner", "x", "--actions", "*", "--rate", "100"],
        ["create-token", "--kind", "application", "--owner", "x", "--actions", "*", "--rate", "0/second"],
        ["create-token", "--kind", "application", "--owner", "x", "--actions", "*", "--rate", "5/hour"],
        ["create-token", "--kind", "application", "--owner", "x", "--actions", "*", "--rate", "1000001/minute"],
        ["set-rate", "--token-id", "999", "--rate", "5/second"],
        ["set-rate", "--group", "nobody", "--clear"],
        ["set-rate", "--group", "nobody"],
        ["set-rate", "--rate", "5/second"],
    ],
)
def test_bad_rate_arguments_are_refused(
    sqlite_url: str, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = _main(monkeypatch, sqlite_url, *args)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    assert code == 2
    assert capsys.readouterr().err.strip()
