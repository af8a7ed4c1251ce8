"""Grafana cannot run here: its provisioning and the dashboard JSON are checked for structure."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.compose_file import COMPOSE_FILE
from tests.deploy.dashboards import DASHBOARDS, GRAFANA, load, panels, queries, substitute, variables
from tests.support import ROOT


def provisioned_datasources() -> list[dict[str, Any]]:
    found = []
    for path in sorted((GRAFANA / "provisioning" / "datasources").glob("*.y*ml")):
        found += yaml.safe_load(path.read_text())["datasources"]
    return found


def compose() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return config


def test_the_datasource_is_the_stacks_prometheus_with_a_fixed_uid() -> None:
    (datasource,) = provisioned_datasources()
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == "cartero-prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "prometheus" in compose()["services"]


def test_the_dashboard_provider_reads_the_mounted_folder() -> None:
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "cartero.yml").read_text())["providers"]
    grafana = compose()["services"]["grafana"]
    mounts = dict(volume.rsplit(":", 2)[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert mounts["./grafana/dashboards"] == providers[0]["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(providers[0]["options"]["path"] + "/")
    assert (ROOT / "grafana" / "dashboards" / home.rsplit("/", 1)[1]).is_file()


def test_there_is_a_dashboard() -> None:
    assert DASHBOARDS, "no dashboard JSON in grafana/dashboards/"


def test_dashboard_uids_are_unique() -> None:
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert all(uids) and len(uids) == len(set(uids))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_has_a_target_on_the_datasource_by_uid(path: Any) -> None:
    dashboard = load(path)
    uid = provisioned_datasources()[0]["uid"]
    ids = []
    for panel in panels(dashboard):
        ids.append(panel["id"])
        if panel["type"] == "row":
            continue
        title = panel.get("title")
        assert title, f"panel {panel['id']} has no title"
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, title
        targets = panel.get("targets") or []
        assert targets, f"panel {title!r} has no target"
        refs = [t["refId"] for t in targets]
        assert len(refs) == len(set(refs)), title
        for target in targets:
            assert target.get("expr", "").strip(), f"{title} {target['refId']} has no query"
            assert target.get("datasource", {}).get("uid") == uid, f"{title} {target['refId']}"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, title
    assert len(ids) == len(set(ids)), "panel ids repeat"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_template_variables_are_defined_and_query_the_datasource_by_uid(path: Any) -> None:
    dashboard = load(path)
    defined = variables(dashboard)
    uid = provisioned_datasources()[0]["uid"]
    for variable in defined.values():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": uid}, variable["name"]
    values = dict.fromkeys(defined, "x")
    for query in queries():
        substitute(query.expr, values)  # raises on an undefined variable


def test_the_dashboard_shows_what_the_operators_need() -> None:
    exprs = " ".join(q.expr for q in queries())
    for metric in (
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_queue_messages_published_total",
        "rabbitmq_channel_messages_delivered_ack_total",
        "monitor_replicas",
        "sender_requests_total",
        "sender_publish_seconds_bucket",
        "validator_decisions_total",
        "consumer_messages_total",
        "consumer_processing_seconds_bucket",
        "provider_circuit_state",
        "provider_attempts_total",
        "provider_failovers_total",
        "sender_status_requests_total",
        "sender_status_seconds_bucket",
        "webhook_deliveries_total",
        "webhook_notifications_total",
        "webhook_delivery_seconds_bucket",
        "dead_letters_actions_total",
    ):
        assert metric in exprs, metric
    assert 'kind="desired"' in exprs and 'kind="running"' in exprs
    assert '[.]dlq"' in exprs  # the dead-letter queues' panel
