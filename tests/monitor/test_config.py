"""The monitor's settings: every one documented, the documented values valid."""

from __future__ import annotations

import pytest

from monitor.config import Settings
from tests.support import ROOT


def env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            pairs[key] = value
    return pairs


def test_every_setting_is_listed_in_env_example_and_the_configuration_page() -> None:
    documented = env_example()
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert name.upper() in documented, name
        assert f"`{name.upper()}`" in configuration, name


def test_the_documented_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    documented = env_example()
    names = [n for n in Settings.model_fields if n.startswith("monitor_") or n == "prometheus_url"]
    for name in names:
        monkeypatch.delenv(name.upper(), raising=False)
    defaults = Settings().model_dump(include=set(names))
    for name in names:
        monkeypatch.setenv(name.upper(), documented[name.upper()])
    assert Settings().model_dump(include=set(names)) == defaults


def test_derived_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_QUEUE", "correos")
    monkeypatch.setenv("MONITOR_CONSUMER", "consumer_email")
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@broker:5672/prod%2Fsms")
    settings = Settings()
    assert settings.name == "monitor-correos"
    assert settings.command[1:] == ["-m", "consumer_email"]
    assert settings.replica_port_env == "CONSUMER_EMAIL_METRICS_PORT"
    assert settings.docker_image == "cartero/consumer_email:latest"
    assert settings.vhost == "prod/sms"


def test_a_queue_prefix_overrides_the_shared_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_MAX", "4")
    monkeypatch.setenv("MONITOR_SMS_MAX", "20")
    monkeypatch.setenv("MONITOR_EMAIL_MAX", "7")
    monkeypatch.setenv("MONITOR_SMS_CONSUMER_ENV", '{"SMS_PROVIDER": "log"}')
    monkeypatch.setenv("MONITOR_SETTINGS_PREFIX", "MONITOR_SMS_")
    sms = Settings()
    assert sms.monitor_max == 20 and sms.monitor_consumer_env == {"SMS_PROVIDER": "log"}
    monkeypatch.setenv("MONITOR_SETTINGS_PREFIX", "MONITOR_EMAIL_")
    assert Settings().monitor_max == 7
    monkeypatch.delenv("MONITOR_SETTINGS_PREFIX")
    assert Settings().monitor_max == 4

    monkeypatch.setenv("MONITOR_SETTINGS_PREFIX", "MONITOR_SMS_")
    monkeypatch.setenv("MONITOR_SMS_CONSUMER_ENV", "{not json")
    with pytest.raises(ValueError, match="MONITOR_SMS_CONSUMER_ENV is not JSON"):
        Settings()
