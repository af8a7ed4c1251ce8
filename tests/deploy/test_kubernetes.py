"""deploy/kubernetes, checked offline (no API server can run here): every overlay renders with
`kubectl kustomize`; every document validates against the Kubernetes API's schemas (strict) or its
CRD's; checkov finds nothing; and the properties the deployment promises hold: probes, limits,
non-root pods, credentials from Secrets, KEDA on the monitor's numbers, grace above the drain,
NetworkPolicies that open only edges compose has."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cartero_common.settings import ConsumerSettings
from cartero_common.wire import QUEUE_EMAIL, QUEUE_SMS
from consumer_email.config import Settings as EmailSettings
from consumer_logs.config import Settings as LogsSettings
from consumer_sms.config import Settings as SmsSettings
from consumer_webhooks.config import Settings as WebhooksSettings
from monitor.config import Settings as MonitorSettings
from tests.deploy import kubernetes_manifests as k8s
from tests.deploy.test_checkov import checkov, skip_list
from tests.support import ROOT, unavailable

# The Kubernetes release whose API schemas the documents must satisfy (kubernetes-validate ships it).
KUBERNETES_VERSION = "1.33.0"
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
}
SCALED = {"consumer-sms": QUEUE_SMS, "consumer-email": QUEUE_EMAIL}
CONSUMERS: dict[str, type[ConsumerSettings]] = {
    "consumer-sms": SmsSettings,
    "consumer-email": EmailSettings,
    "consumer-logs": LogsSettings,
    "consumer-webhooks": WebhooksSettings,
}
# What compose's preflight names that this deployment does without, and why (docs/scaling-out.md).
NOT_ON_KUBERNETES = {
    "RABBITMQ_ADMIN_PASSWORD",  # the operator makes the administrator (cartero-rabbitmq-default-user)
    "RABBITMQ_MONITOR_PASSWORD",  # no monitor: KEDA scales, as the `keda` role
    "GRAFANA_ADMIN_PASSWORD",  # no Grafana
    "POSTGRES_PASSWORD",  # CloudNativePG's superuser: secrets/postgres-superuser.env
}
ONLY_ON_KUBERNETES = {"RABBITMQ_KEDA_USER", "RABBITMQ_KEDA_PASSWORD"}
CREDENTIAL = re.compile(r"PASSWORD|_KEY$|SECRET")


@pytest.fixture(scope="module", params=k8s.OVERLAYS)
def overlay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return k8s.render(request.param, tmp_path_factory.mktemp("kubernetes"))


def run_json(command: list[str], documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = subprocess.run(
        k8s.offline(command), input=json.dumps(documents), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    parsed: list[dict[str, Any]] = json.loads(result.stdout)
    return parsed


def validate_api(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    python = k8s.TOOLS / "python"
    if not python.is_file():
        unavailable(f"{python} (`make kubernetes-tools` installs it)")
    return run_json([str(python), str(k8s.CRD_SCHEMAS / "validate_api.py"), KUBERNETES_VERSION], documents)


def validate_crds(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (k8s.CRD_SCHEMAS / "node_modules" / "@kubernetes-models" / "keda").is_dir():
        unavailable("node and the CRD models (`make kubernetes-tools` installs them)")
    return run_json([str(node), str(k8s.CRD_SCHEMAS / "validate_crds.mjs")], documents)


def of_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def test_the_overlays_render_what_compose_runs(overlay: list[dict[str, Any]]) -> None:
    deployments = set(of_kind(overlay, "Deployment"))
    services = {"sender", "token-validator", "token-panel", "consumer-logs", "dead-letters", "consumer-webhooks"}
    assert deployments == services | set(SCALED), "the monitor must not be deployed: KEDA scales"
    assert set(of_kind(overlay, "Job")) == {"rabbitmq-setup", "postgres-setup"} | {
        f"{name}-migrate" for name in ("token-validator", "consumer-logs", "consumer-sms", "consumer-email")
    }
    assert all(d["metadata"].get("namespace") == "cartero" for d in overlay if d["kind"] != "Namespace")
    assert len(k8s.OVERLAYS) >= 2, k8s.OVERLAYS


def test_every_document_validates_against_its_schema(overlay: list[dict[str, Any]]) -> None:
    judged = validate_api(overlay)
    errors = [r for r in judged if r["error"]]
    assert not errors, errors
    by_schema = {(d["apiVersion"], d["kind"]): r["schema"] for d, r in zip(overlay, judged, strict=True)}
    assert {kind for kind, schema in by_schema.items() if schema != "kubernetes"} == CUSTOM_KINDS, by_schema
    assert all(by_schema[kind] == "crd" for kind in CUSTOM_KINDS), by_schema
    # A second opinion on KEDA's and CloudNativePG's, from the npm models.
    models = validate_crds(overlay)
    assert {(r["apiVersion"], r["kind"]) for r in models} == CUSTOM_KINDS - {
        ("rabbitmq.com/v1beta1", "RabbitmqCluster")
    }
    assert not [r for r in models if r["error"]], models


def test_the_validators_refuse_broken_documents() -> None:
    """The same checks fail on what the API server would refuse or silently drop, so their silence
    above means something."""
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}}
    rabbit = {"apiVersion": "rabbitmq.com/v1beta1", "kind": "RabbitmqCluster", "metadata": {"name": "x"}}
    scaled = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"}}
    cnpg = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": "x"}}
    target = {"scaleTargetRef": {"name": "x"}, "triggers": []}
    bad = [
        {**deployment, "spec": {"selector": {}, "template": {}, "replica": 3}},  # unknown field (strict)
        {**deployment, "spec": {"selector": {}, "template": {}, "replicas": "3"}},
        {**rabbit, "spec": {"replica": 3}},
        {**scaled, "spec": {**target, "minReplicaCount": "one"}},
        {**scaled, "spec": {"triggers": []}},  # no scaleTargetRef
        {**scaled, "spec": {**target, "minReplicas": 1}},
        {**cnpg, "spec": {"instances": 0, "storage": {"size": "1Gi"}}},
        # Misspelt: the API server would drop it, and postgres-setup would find no superuser.
        {**cnpg, "spec": {"instances": 3, "storage": {"size": "1Gi"}, "enableSuperUserAccess": True}},
    ]
    judged = validate_api(bad)
    assert all(r["error"] for r in judged), judged
    models = validate_crds(bad[3:5] + bad[6:7])
    assert len(models) == 3 and all(r["error"] for r in models), models


def test_checkov_passes_the_rendered_manifests(overlay: list[dict[str, Any]], tmp_path: Path) -> None:
    for document in overlay:
        name = f"{document['kind']}-{document['metadata']['name']}.json"
        (tmp_path / name).write_text(json.dumps(document))
    reports = [r for r in checkov("--framework", "kubernetes", "--directory", str(tmp_path)) if r]
    failed = [
        f"{c['check_id']} {c['check_name']} ({c['resource']})" for r in reports for c in r["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert sum(r["summary"]["passed"] for r in reports) > 500, [r["summary"] for r in reports]
    skipped = {c["check_id"] for r in reports for c in r["results"]["skipped_checks"]}
    assert skipped <= set(skip_list()), skipped


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    found: list[dict[str, Any]] = spec["containers"] + spec.get("initContainers", [])
    return found


def test_every_pod_is_unprivileged_and_bounded(overlay: list[dict[str, Any]]) -> None:
    for name, template in k8s.pod_templates(overlay).items():
        spec = template["spec"]
        assert spec["automountServiceAccountToken"] is False, name
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 10000, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in containers(template):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)
            assert not container["image"].endswith(":latest") and ":" in container["image"], name


def test_every_deployment_has_both_probes_and_a_disruption_budget(overlay: list[dict[str, Any]]) -> None:
    budgets = of_kind(overlay, "PodDisruptionBudget").values()
    for name, deployment in of_kind(overlay, "Deployment").items():
        for container in containers(deployment["spec"]["template"]):
            for probe in ("livenessProbe", "readinessProbe"):
                check = container[probe]["httpGet"]
                ports = {p["name"]: p["containerPort"] for p in container["ports"]}
                assert check["port"] in ports and check["path"] in ("/healthz", "/readyz", "/metrics"), (name, probe)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert [b for b in budgets if k8s.matches(b["spec"]["selector"], labels)], f"{name} has no PodDisruptionBudget"


def check_environment(where: str, env: list[dict[str, Any]], secrets: dict[str, set[str]]) -> None:
    """A credential is a secretKeyRef to a key that exists; a literal value names only variables set
    before it (Kubernetes expands `$(VAR)` from earlier entries only), and each password in its URLs
    is such a reference to a Secret's value."""
    from_secret: set[str] = set()
    defined: set[str] = set()
    for variable in env:
        name = variable["name"]
        defined.add(name)
        ref = variable.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["key"] in secrets[ref["name"]], (where, ref)
            from_secret.add(name)
            continue
        value = variable["value"]
        used = set(re.findall(r"\$\(([A-Z0-9_]+)\)", value))
        assert used <= defined - {name}, f"{where}: {name} uses {used - defined} before they are set"
        assert not CREDENTIAL.search(name), f"{where}: {name} is a literal"
        for password in re.findall(r"://[^/@:,]+:([^/@,]*)@", value):
            reference = re.fullmatch(r"\$\(([A-Z0-9_]+)\)", password)
            assert reference and reference[1] in from_secret, f"{where}: {name} holds a literal password"


def test_every_credential_comes_from_a_secret(overlay: list[dict[str, Any]]) -> None:
    secrets = {name: set(d.get("data", {})) for name, d in of_kind(overlay, "Secret").items()}
    # The operator's own Secret for the administrator it makes.
    secrets["cartero-rabbitmq-default-user"] = {"username", "password"}
    for name, template in k8s.pod_templates(overlay).items():
        for container in containers(template):
            check_environment(name, container.get("env", []), secrets)


def test_the_secrets_are_compose_preflights_and_never_in_git() -> None:
    preflight = set(k8s.compose()["services"]["preflight"]["environment"]["SECRETS"].split())
    example = (k8s.KUBERNETES / "secrets" / "cartero.env.example").read_text().splitlines()
    entries = dict(line.split("=", 1) for line in example if line and not line.startswith("#"))
    assert set(entries) == (preflight - NOT_ON_KUBERNETES) | ONLY_ON_KUBERNETES
    assert all("changethis" in value for key, value in entries.items() if not key.endswith("_USER"))
    for real in ("cartero.env", "postgres-superuser.env"):
        path = f"deploy/kubernetes/secrets/{real}"
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, f"{path} is not ignored"


def test_keda_scales_the_consumers_on_the_monitors_numbers(overlay: list[dict[str, Any]]) -> None:
    fields = MonitorSettings.model_fields
    scaled = of_kind(overlay, "ScaledObject")
    auths = of_kind(overlay, "TriggerAuthentication")
    assert set(scaled) == set(SCALED)
    for name, queue in SCALED.items():
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"]["name"] in of_kind(overlay, "Deployment")
        assert spec["minReplicaCount"] == fields["monitor_min"].default
        assert spec["maxReplicaCount"] == fields["monitor_max"].default
        assert spec["pollingInterval"] == fields["monitor_interval"].default
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] == fields["monitor_stabilization"].default
        (trigger,) = spec["triggers"]
        metadata = trigger["metadata"]
        assert trigger["type"] == "rabbitmq" and metadata["mode"] == "QueueLength" and metadata["protocol"] == "http"
        assert metadata["queueName"] == queue and metadata["vhostName"] == "cartero"
        assert int(metadata["value"]) == fields["monitor_threshold_per_consumer"].default
        auth = auths[trigger["authenticationRef"]["name"]]["spec"]["secretTargetRef"]
        assert {a["parameter"] for a in auth} == {"username", "password"}
        secrets = of_kind(overlay, "Secret")
        assert all(a["key"] in secrets[a["name"]]["data"] for a in auth), auth
        assert "replicas" not in of_kind(overlay, "Deployment")[name]["spec"], "KEDA owns the replica count"


def test_consumers_get_longer_than_their_drain_to_stop(overlay: list[dict[str, Any]]) -> None:
    for name, settings in CONSUMERS.items():
        # The consume loop's grace, then the extra second its watchdog allows (cartero_common/consume/cli.py).
        drain = settings.model_fields["consumer_grace_seconds"].default + 1.0
        grace = of_kind(overlay, "Deployment")[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > drain, (name, grace, drain)


def test_rabbitmq_and_postgres_come_from_their_operators(overlay: list[dict[str, Any]]) -> None:
    (rabbit,) = of_kind(overlay, "RabbitmqCluster").values()
    assert rabbit["spec"]["replicas"] == 3
    tag = re.search(r":(\d+)\.(\d+)(?:\.(\d+))?", rabbit["spec"]["image"])
    assert tag is not None, rabbit["spec"]["image"]
    version = (int(tag[1]), int(tag[2]), int(tag[3] or 0))
    assert version >= (3, 13, 4), f"{rabbit['spec']['image']}: the PHP clients' declares need 3.13.4 or later"
    config = of_kind(overlay, "ConfigMap")
    assert any(c.get("data", {}).get("CARTERO_QUEUE_TYPE") == "quorum" for c in config.values())
    (postgres,) = of_kind(overlay, "Cluster").values()
    for spec in (rabbit["spec"], postgres["spec"]):
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"]) & set(spec["resources"]["limits"])
    # postgres-setup signs in as the superuser, from a basic-auth Secret the operator can read.
    assert postgres["spec"]["enableSuperuserAccess"] is True
    superuser = of_kind(overlay, "Secret")[postgres["spec"]["superuserSecret"]["name"]]
    assert superuser["type"] == "kubernetes.io/basic-auth" and set(superuser["data"]) == {"username", "password"}
    # Every node, by name, in every AMQP_URL: the clients fail over between them.
    nodes = {f"cartero-rabbitmq-server-{i}.cartero-rabbitmq-nodes" for i in range(rabbit["spec"]["replicas"])}
    for name, template in k8s.pod_templates(overlay).items():
        for variable in containers(template)[0].get("env", []):
            if variable["name"] == "AMQP_URL":
                hosts = set(re.findall(r"@([^:/]+):5672/", variable["value"]))
                assert hosts == nodes, (name, hosts)


def test_the_definitions_are_composes_plus_the_keda_role() -> None:
    compose = json.loads((ROOT / "rabbitmq" / "definitions.json").read_text())
    ours = json.loads((k8s.KUBERNETES / "base" / "rabbitmq-definitions.json").read_text())
    keda = [role for role in ours["cartero_roles"] if role["role"] == "keda"]
    ours["cartero_roles"] = [role for role in ours["cartero_roles"] if role["role"] != "keda"]
    assert ours == compose, "copy rabbitmq/definitions.json to deploy/kubernetes/base/ and keep its `keda` role"
    assert [(r["tags"], r["configure"], r["write"], r["read"]) for r in keda] == [(["management"], "^$", "^$", "^$")]


def test_network_policies_open_only_compose_edges(overlay: list[dict[str, Any]]) -> None:
    services = k8s.compose()["services"]
    networks = k8s.compose()["networks"]
    edges = k8s.allows(overlay)
    assert any(
        d["metadata"]["name"] == "default-deny"
        and d["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        for d in of_kind(overlay, "NetworkPolicy").values()
    )

    def on(name: str) -> set[str]:
        return set(services[k8s.compose_name(name)].get("networks", []))

    for edge in edges:
        ends = {edge.source, edge.target}
        if k8s.DNS in ends:
            continue
        inside = [end for end in ends if end in k8s.pod_labels(overlay)]
        assert inside, edge
        if k8s.ANYWHERE in ends:
            # Out to the world: compose's network has egress. In from anywhere: compose publishes it.
            (pod,) = inside
            if edge.source == k8s.ANYWHERE:
                assert services[k8s.compose_name(pod)].get("ports") or edge.port is None, edge
            assert any(not networks.get(n, {}).get("internal") for n in on(pod)), edge
            continue
        names = [k8s.NAMESPACE_PEERS[e.split(":", 1)[1]] if e.startswith("namespace:") else e for e in ends]
        shared = set.intersection(*(set(services[k8s.compose_name(n)].get("networks", [])) for n in names))
        assert shared, f"{edge}: no compose network holds both"


def test_every_network_policy_selects_pods(overlay: list[dict[str, Any]]) -> None:
    """A policy whose selector matches nothing opens nothing: a typo there fails only at run time."""
    pods = k8s.pod_labels(overlay)
    for name, policy in of_kind(overlay, "NetworkPolicy").items():
        selector = policy["spec"]["podSelector"]
        assert [pod for pod, labels in pods.items() if k8s.matches(selector, labels)], f"{name} selects no pod"
    scraped = of_kind(overlay, "NetworkPolicy")["prometheus-scrapes"]["spec"]["podSelector"]
    ours = k8s.pod_templates(overlay)
    assert all(k8s.matches(scraped, template["metadata"]["labels"]) for template in ours.values())


def test_every_address_a_pod_is_given_is_reachable(overlay: list[dict[str, Any]]) -> None:
    edges = k8s.allows(overlay)
    services = {name: d["spec"]["selector"] for name, d in of_kind(overlay, "Service").items()}
    pods = k8s.pod_labels(overlay)

    def target(host: str) -> str:
        host = host.removesuffix(".cartero.svc")
        if host.startswith("cartero-rabbitmq"):
            return "cartero-rabbitmq"
        if host.startswith("cartero-postgres"):
            return "cartero-postgres"
        (pod,) = [p for p, labels in pods.items() if all(labels.get(k) == v for k, v in services[host].items())]
        return pod

    checked = 0
    for name, template in k8s.pod_templates(overlay).items():
        for variable in containers(template)[0].get("env", []):
            for host, port in re.findall(r"://(?:[^@/,]*@)?([a-z0-9.-]+):(\d+)", variable.get("value", "")):
                assert k8s.reachable(edges, name, target(host), int(port)), f"{name} cannot reach {host}:{port}"
                checked += 1
    for scaled in of_kind(overlay, "ScaledObject").values():
        host, port = re.findall(r"://([a-z0-9.-]+):(\d+)", scaled["spec"]["triggers"][0]["metadata"]["host"])[0]
        assert k8s.reachable(edges, "namespace:keda", target(host), int(port)), host
    assert checked > 20, checked
