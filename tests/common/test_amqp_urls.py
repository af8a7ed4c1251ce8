"""`AMQP_URL` as a list of nodes (`cartero_common/amqp/urls.py`): what is taken, what is refused
at start and why, and the order in which a client tries the nodes."""

from __future__ import annotations

import random

import pytest

from cartero_common.amqp.blocking import node_parameters
from cartero_common.amqp.urls import failover_order, first_url, node_label, split_urls
from cartero_common.settings import ServiceSettings, load_settings

NODES = "amqp://u:secret@node1:5672/app,amqp://u:secret@node2:5673/app, amqp://u:secret@node3/app ,"


def test_a_list_is_split_and_a_single_url_is_a_list_of_one() -> None:
    assert split_urls(NODES) == (
        "amqp://u:secret@node1:5672/app",
        "amqp://u:secret@node2:5673/app",
        "amqp://u:secret@node3/app",
    )
    assert split_urls("amqp://guest:guest@localhost:5672/") == ("amqp://guest:guest@localhost:5672/",)
    assert first_url(NODES) == "amqp://u:secret@node1:5672/app"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "no broker URL"),
        (" , ", "no broker URL"),
        ("http://node1/", "amqp:// or amqps://"),
        ("amqp://u:secret@node1/app,amqps://u:secret@node2/app", "scheme"),
        ("amqp://u:secret@node1/app,amqp://v:secret@node2/app", "username"),
        ("amqp://u:secret@node1/app,amqp://u:other@node2/app", "password"),
        ("amqp://u:secret@node1/app,amqp://u:secret@node2/", "vhost"),
        ("amqp://u:secret@node1:notaport/app", "port"),
    ],
)
def test_a_list_that_would_switch_identity_on_failover_is_refused(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as refused:
        split_urls(value)
    assert "secret" not in str(refused.value) and "other" not in str(refused.value)


def test_the_default_vhost_is_the_same_written_either_way() -> None:
    assert len(split_urls("amqp://u:p@node1,amqp://u:p@node2/,amqp://u:p@node3/%2F")) == 3


def test_every_node_is_tried_once_from_a_random_start() -> None:
    urls = ("a", "b", "c")
    orders = {tuple(failover_order(urls, random.Random(seed))) for seed in range(50)}
    assert orders == {("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b")}


def test_pika_is_given_every_node() -> None:
    hosts = sorted(params.host for params in node_parameters(NODES, name="t"))
    assert hosts == ["node1", "node2", "node3"]


def test_a_bad_list_stops_a_service_at_start_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMQP_URL", "amqp://u:secret@node1/,amqp://u:leaked@node2/")
    with pytest.raises(SystemExit) as stopped:
        load_settings(ServiceSettings, "consumer_sms")
    message = str(stopped.value)
    assert "AMQP_URL" in message and "password" in message
    assert "secret" not in message and "leaked" not in message
    monkeypatch.setenv("AMQP_URL", " amqp://u:p@node1/ , amqp://u:p@node2/ ")
    assert ServiceSettings().amqp_url == "amqp://u:p@node1/,amqp://u:p@node2/"


def test_logs_name_a_node_by_host_and_port_only() -> None:
    assert node_label("amqp://u:secret@node1:5672/app") == "node1:5672"
    assert node_label("amqps://node2/") == "node2"
