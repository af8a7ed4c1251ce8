"""prometheus/: promtool on the files, then every dashboard query and alert expression evaluated
by a real Prometheus scraping the machine's real RabbitMQ, with data made on an own vhost."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from pydantic import SecretStr

from cartero_common.amqp.setup import SetupSettings, run
from tests.deploy.dashboards import Query, alert_rules, metric_names, queries, substitute, variable_values
from tests.deploy.prometheus_server import ALERTS, PRODUCTION, Prometheus, binary, running_prometheus
from tests.e2e.conftest import Suite, started_suite
from tests.support import RABBIT_API, RABBIT_AUTH, ROOT, amqp_url_for, rabbit_api, wait_until

QUERIES = queries()
RULES = alert_rules()
# Which source folders define the metrics a prefix names (a folder not in this tree is skipped).
METRIC_OWNERS = {
    "sender_": ["sender"],
    "validator_": ["token_validator"],
    "consumer_": ["cartero_common", "consumer_sms", "consumer_email", "consumer_logs"],
    "monitor_": ["monitor"],
    "provider_": ["cartero_common"],
    "webhook_": ["cartero_common", "consumer_logs", "consumer_webhooks"],
    "dead_letters_": ["dead_letters"],
}


def test_promtool_checks_the_config_and_its_rules() -> None:
    result = subprocess.run([binary("promtool"), "check", "config", str(PRODUCTION)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "rule files found" in result.stdout


def test_promtool_checks_the_alert_rules() -> None:
    result = subprocess.run([binary("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULES)} rules found" in result.stdout


@dataclass(frozen=True)
class Live:
    prometheus: Prometheus
    vhost: str

    def values(self) -> dict[str, str]:
        return variable_values(self.vhost)


@contextmanager
def traffic(vhost: str) -> Iterator[BlockingChannel]:
    """cola_sms: 3 ready, no consumer; correos: 2 delivered and held unacked by a consumer;
    cola_sms.dlq: 1 dead letter."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url_for(vhost)))
    channel = connection.channel()
    channel.confirm_delivery()
    for queue, count in (("cola_sms", 3), ("correos", 2), ("cola_sms.dlq", 1)):
        for _ in range(count):
            channel.basic_publish("", queue, b'{"id": "x"}', pika.BasicProperties(delivery_mode=2))
    channel.basic_qos(prefetch_count=10)
    channel.basic_consume("correos", lambda *_: None, auto_ack=False)
    try:
        yield channel
    finally:
        connection.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    vhost = f"cartero-test-prom-{uuid.uuid4().hex[:10]}"
    settings = SetupSettings(
        rabbitmq_api_url=RABBIT_API,
        rabbitmq_admin_user=RABBIT_AUTH[0],
        rabbitmq_admin_password=SecretStr(RABBIT_AUTH[1]),
        rabbitmq_vhost=vhost,
        rabbitmq_definitions=ROOT / "rabbitmq" / "definitions.json",
    )
    try:
        run(settings)  # the stack's own topology step makes the queues
        with (
            started_suite(tmp_path_factory.mktemp("var"), "cartero-test-prom-suite") as suite,
            traffic(vhost) as channel,
            running_prometheus(tmp_path_factory.mktemp("prometheus"), suite_targets(suite)) as prometheus,
        ):
            here = Live(prometheus, vhost)
            send_through_the_suite(suite)

            def scraped() -> bool:
                ready = prometheus.result(f'rabbitmq_queue_messages_ready{{vhost="{vhost}",queue="cola_sms"}}')
                unacked = prometheus.result(f'rabbitmq_queue_messages_unacked{{vhost="{vhost}",queue="correos"}}')
                rules = prometheus.get("/api/v1/rules")["groups"]
                evaluated = all(r.get("lastEvaluation", "").startswith("2") for g in rules for r in g["rules"])
                return bool(ready and unacked and evaluated)

            # Queue statistics reach the metrics endpoint every few seconds; the channel keeps
            # the consumer (and its unacknowledged messages) alive meanwhile.
            wait_until(lambda: (channel.connection.process_data_events(0), scraped())[1], timeout=60, what="data")
            channel.connection.process_data_events(0)
            yield here
    finally:
        rabbit_api("DELETE", f"/vhosts/{quote(vhost, safe='')}")


# The jobs the running suite (as `make run` starts it) serves, each scraped by the test's Prometheus.
SUITE_JOBS = (
    "sender",
    "token_validator",
    "token_panel",
    "consumer_logs",
    "consumer_webhooks",
    "dead_letters",
    "monitor",
    "consumers",
)


def suite_targets(suite: Suite) -> dict[str, list[str]]:
    """Where the running suite serves each of SUITE_JOBS' metrics."""
    port = suite.ports
    targets = {
        "sender": [f"127.0.0.1:{port['sender']}"],
        "token_validator": [f"127.0.0.1:{port['validator']}"],
        "token_panel": [f"127.0.0.1:{port['panel']}"],
        "consumer_logs": [f"127.0.0.1:{port['logs']}"],
        "consumer_webhooks": [f"127.0.0.1:{port['webhooks_metrics']}"],
        "dead_letters": [f"127.0.0.1:{port['dead_letters']}"],
        "monitor": [f"127.0.0.1:{port['monitor_sms']}", f"127.0.0.1:{port['monitor_email']}"],
        # The first replica of each consumer listens on its base port.
        "consumers": [f"127.0.0.1:{port['sms_metrics']}", f"127.0.0.1:{port['email_metrics']}"],
    }
    assert tuple(targets) == SUITE_JOBS
    return targets


def send_through_the_suite(suite: Suite) -> None:
    """Requests for the sender and validator panels, messages for the consumer panels, a status
    lookup for the callers' panels."""
    for _ in range(3):
        response = httpx.post(
            f"{suite.sender}/v1/sms",
            json={"mensaje": "hola", "telefono": "+34600111222"},
            headers=suite.auth,
            timeout=10,
        )
        assert response.status_code == 202, response.text
    status = httpx.get(f"{suite.sender}/v1/messages/{response.json()['id']}", headers=suite.auth, timeout=10)
    assert status.status_code == 200, status.text
    refused = httpx.post(
        f"{suite.sender}/v1/sms",
        json={"mensaje": "hola", "telefono": "+34600111222"},
        headers={"Authorization": "Bearer app_notarealtokenatallnotarealtokenatall"},
        timeout=10,
    )
    assert refused.status_code == 401


def values_of(series: list[dict[str, object]], label: str = "queue") -> dict[str, float]:
    return {s["metric"][label]: float(s["value"][1]) for s in series}  # type: ignore[index]


@pytest.mark.integration
@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.panel}[{q.ref}]")
def test_every_dashboard_query_evaluates(live: Live, query: Query) -> None:
    expr = substitute(query.expr, live.values())
    assert "$" not in expr
    for body in (live.prometheus.query(expr), live.prometheus.query_range(expr)):
        assert body["status"] == "success", f"{query.panel}: {body.get('error')}"


def panel_query(title_start: str, ref: str = "A") -> Query:
    (found,) = [q for q in QUERIES if q.panel.startswith(title_start) and q.ref == ref]
    return found


@pytest.mark.integration
def test_every_service_of_the_running_suite_is_scraped(live: Live) -> None:
    def all_up() -> bool:
        up = {s["metric"]["job"]: float(s["value"][1]) for s in live.prometheus.result("min by (job) (up)")}
        jobs = (*SUITE_JOBS, "rabbitmq")
        return all(up.get(job) == 1 for job in jobs)

    wait_until(all_up, timeout=30, what="every job of the running suite up")


@pytest.mark.integration
@pytest.mark.parametrize(
    "title",
    [
        "Sender requests",
        "Sender publish latency",
        "Validator decisions",
        "Consumer outcomes",
        "Consumers per queue",
        "Status requests",
    ],
)
def test_the_service_panels_return_data(live: Live, title: str) -> None:
    """The suite's own metrics, scraped from the running processes, fill the service panels."""
    values = live.values()
    query = substitute(panel_query(title, "A").expr, values)
    wait_until(lambda: live.prometheus.result(query), timeout=30, what=f"data for {title}")


@pytest.mark.integration
def test_the_queue_depth_panels_return_data(live: Live) -> None:
    values = live.values()
    ready = values_of(live.prometheus.result(substitute(panel_query("Queue depth", "A").expr, values)))
    unacked = values_of(live.prometheus.result(substitute(panel_query("Queue depth", "B").expr, values)))
    assert ready["cola_sms"] == 3 and ready["correos"] == 0
    assert unacked["correos"] == 2 and unacked["cola_sms"] == 0
    assert set(ready) == {"cola_sms", "correos", "logs"}  # the dead-letter queues have their own panel
    dead = values_of(live.prometheus.result(substitute(panel_query("Dead-letter").expr, values)))
    assert dead == {"cola_sms.dlq": 1, "correos.dlq": 0, "logs.dlq": 0, "webhooks.dlq": 0, "webhook_deliveries.dlq": 0}
    consumers = values_of(live.prometheus.result(substitute(panel_query("Consumers per queue", "C").expr, values)))
    assert consumers == {"cola_sms": 0, "correos": 1, "logs": 0}


@pytest.mark.integration
@pytest.mark.parametrize("rule", RULES, ids=lambda r: str(r["alert"]))
def test_every_alert_expression_evaluates(live: Live, rule: dict[str, str]) -> None:
    live.prometheus.result(rule["expr"])


def rule_expr(name: str) -> str:
    (expr,) = [str(r["expr"]) for r in RULES if r["alert"] == name]
    return expr


@pytest.mark.integration
def test_alerts_match_the_conditions_they_describe(live: Live) -> None:
    mine = {"vhost": live.vhost}

    def hits(alert: str) -> set[str]:
        return {
            s["metric"]["queue"]
            for s in live.prometheus.result(rule_expr(alert))
            if s["metric"].items() >= mine.items()
        }

    assert hits("CarteroDeadLetters") == {"cola_sms.dlq"}
    assert hits("CarteroQueueWithoutConsumers") == {"cola_sms", "logs"}
    down = {s["metric"]["job"] for s in live.prometheus.result(rule_expr("CarteroTargetDown"))}
    # The suite runs here, so only what it does not start (Grafana, Mailpit, …) may be down.
    running = set(SUITE_JOBS)
    assert "unreachable" in down
    assert not down & (running | {"rabbitmq", "prometheus"}), down


@pytest.mark.integration
def test_prometheus_loads_every_rule_and_evaluates_it_without_error(live: Live) -> None:
    rules = [r for g in live.prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
    assert sorted(r["name"] for r in rules) == sorted(r["alert"] for r in RULES)
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]


@pytest.mark.integration
def test_rabbitmq_metrics_used_exist_on_the_broker(live: Live) -> None:
    known = set(live.prometheus.get("/api/v1/label/__name__/values"))
    used = {n for q in QUERIES for n in metric_names(q.expr)} | {n for r in RULES for n in metric_names(r["expr"])}
    missing = sorted(n for n in used if n.startswith("rabbitmq_") and n not in known)
    assert not missing, f"RabbitMQ does not export {missing}"


def test_service_metrics_used_are_defined_by_the_services() -> None:
    used = {n for q in QUERIES for n in metric_names(q.expr)} | {n for r in RULES for n in metric_names(r["expr"])}
    checked = 0
    for name in sorted(used):
        owners = next((folders for prefix, folders in METRIC_OWNERS.items() if name.startswith(prefix)), None)
        if owners is None:
            continue
        base = re.sub(r"_(bucket|sum|count)$", "", name) if name.endswith(("_bucket", "_sum", "_count")) else name
        sources = [p for folder in owners if (ROOT / folder).is_dir() for p in (ROOT / folder).rglob("*.py")]
        if not sources:
            continue  # that service is not in this tree yet
        text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
        assert f'"{base}"' in text or f'"{base.removesuffix("_total")}"' in text, f"no service defines {name}"
        checked += 1
    assert checked >= 4  # at least the sender's and the consumers' metrics are in this tree
