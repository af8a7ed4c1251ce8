"""The gate's settings: documented in .env.example and docs/configuration.md, with those defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from docker_gate.config import Settings
from tests.support import ROOT

OWN = [name for name in Settings.model_fields if name.startswith("docker_gate_")]


def env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#") and "=" in line)


def test_every_setting_is_listed_in_env_example_and_the_configuration_page() -> None:
    documented = env_example()
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    for name in OWN:
        assert name.upper() in documented, name
        assert f"`{name.upper()}`" in configuration, name


def test_the_documented_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = env_example()
    for name in OWN:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("DOCKER_GATE_PROFILE", "monitor")
    defaults = Settings().model_dump(include=set(OWN))
    for name in OWN:
        if documented[name.upper()]:
            monkeypatch.setenv(name.upper(), documented[name.upper()])
    assert Settings().model_dump(include=set(OWN)) == defaults
    assert Settings().policy.images == frozenset({"cartero/consumer_sms:latest", "cartero/consumer_email:latest"})


def test_the_profile_is_required_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_GATE_PROFILE", raising=False)
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("DOCKER_GATE_PROFILE", "everything")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize("network", ["host", "container:cartero-postgres-1", "bridge", ""])
def test_the_network_cannot_be_the_hosts_or_anothers(monkeypatch: pytest.MonkeyPatch, network: str) -> None:
    monkeypatch.setenv("DOCKER_GATE_PROFILE", "monitor")
    monkeypatch.setenv("DOCKER_GATE_NETWORK", network)
    with pytest.raises(ValidationError, match="DOCKER_GATE_NETWORK"):
        Settings()
