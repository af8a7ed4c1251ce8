"""Passwords masked in URLs that get printed or logged."""

from __future__ import annotations

import subprocess
import sys

from cartero_common.redact import public_url, redact_text, redact_url
from tests.support import ROOT


def test_a_urls_password_is_masked_and_the_rest_kept() -> None:
    assert redact_url("amqp://cartero:s3cret@rabbitmq:5672/cartero") == "amqp://cartero:***@rabbitmq:5672/cartero"
    assert (
        redact_url("postgresql+psycopg2://cartero:p%40ss@postgres:5432/consumer_logs")
        == "postgresql+psycopg2://cartero:***@postgres:5432/consumer_logs"
    )
    assert redact_url("amqps://u:pw@[::1]:5671/?heartbeat=30") == "amqps://u:***@[::1]:5671/?heartbeat=30"
    for unchanged in ("amqp://localhost:5672/", "http://127.0.0.1:8003/v1/events", "sqlite:///var/x.db", "nonsense"):
        assert redact_url(unchanged) == unchanged


def test_urls_inside_a_text_are_masked() -> None:
    text = "could not reach amqp://guest:guest@localhost:5672/ nor postgresql://a:b@db/x; http://h/p stays"
    assert (
        redact_text(text)
        == "could not reach amqp://guest:***@localhost:5672/ nor postgresql://a:***@db/x; http://h/p stays"
    )


def test_the_command_reads_the_url_from_stdin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cartero_common", "redact-url"],
        cwd=ROOT,
        input="amqp://cartero:top-secret@rabbitmq:5672/\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == "amqp://cartero:***@rabbitmq:5672/\n"


def test_public_url_keeps_where_it_points_and_drops_every_credential() -> None:
    assert public_url("https://user:s3cret@sms.example:8443/v1/send?key=abc#x") == "https://sms.example:8443/v1/send"
    assert public_url("http://127.0.0.1:9000/send") == "http://127.0.0.1:9000/send"
    assert public_url("http://token@[::1]:80/") == "http://[::1]:80/"


def test_every_node_of_a_list_is_masked() -> None:
    nodes = "amqp://cartero:s3cret@rabbit-1/app,amqp://cartero:s3cret@rabbit-2:5672/app"
    assert redact_url(nodes) == "amqp://cartero:***@rabbit-1/app,amqp://cartero:***@rabbit-2:5672/app"
