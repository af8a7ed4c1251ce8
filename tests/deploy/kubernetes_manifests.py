"""deploy/kubernetes rendered offline, and what its NetworkPolicies allow (tests/deploy/test_kubernetes.py).

`kubectl kustomize` (from .venv/kubernetes) renders each overlay from a copy of the tree in which the
secrets' example files stand in for the git-ignored ones. No API server is involved anywhere: the
policies are evaluated here, by label selector, over the pods the manifests and the operators make.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT, unavailable

KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(path.name for path in (KUBERNETES / "overlays").iterdir() if path.is_dir())
TOOLS = ROOT / ".venv" / "kubernetes" / "bin"
KUBECTL = TOOLS / "kubectl"
CRD_SCHEMAS = Path(__file__).resolve().parent / "kubernetes"

# The pods the operators make, by the labels they put on them (RabbitMQ Cluster Operator: the
# cluster's name; CloudNativePG: cnpg.io/cluster), beside those of our Deployments and Jobs.
OPERATOR_PODS = {
    "cartero-rabbitmq": {"app.kubernetes.io/name": "cartero-rabbitmq"},
    "cartero-postgres": {"cnpg.io/cluster": "cartero-postgres"},
}
# Kubernetes names (DNS labels: no underscores) to the compose services they stand for.
COMPOSE_NAMES = {
    "cartero-rabbitmq": "rabbitmq",
    "cartero-postgres": "postgres",
    "rabbitmq-setup": "rabbitmq-setup",
    "postgres-setup": "postgres-setup",
    **{f"{name}-migrate": f"{name.replace('-', '_')}-migrate" for name in ("token-validator", "consumer-logs")},
    **{f"{name}-migrate": f"{name.replace('-', '_')}-migrate" for name in ("consumer-sms", "consumer-email")},
}
# Other namespaces a policy admits, and who stands there in compose: KEDA does the monitor's job,
# the cluster's Prometheus scrapes as compose's does, an operator is part of what it runs.
NAMESPACE_PEERS = {
    "keda": "monitor",
    "monitoring": "prometheus",
    "rabbitmq-system": "rabbitmq",
    "cnpg-system": "postgres",
}
ANYWHERE = "(anywhere)"
DNS = "(cluster DNS)"


def compose_name(workload: str) -> str:
    return COMPOSE_NAMES.get(workload, workload.replace("-", "_"))


def offline(command: list[str]) -> list[str]:
    """The command in a network namespace of its own where the machine allows it (root and
    util-linux' unshare), as test_checkov.py runs checkov: none of these tools may need a network."""
    unshare = shutil.which("unshare")
    return [unshare, "--net", *command] if unshare and os.geteuid() == 0 else command


def render(overlay: str, workdir: Path) -> list[dict[str, Any]]:
    """The overlay's documents, as `kubectl apply -k` would send them."""
    if not KUBECTL.is_file():
        unavailable(f"kubectl at {KUBECTL} (`make kubernetes-tools` or `make test` installs it)")
    tree = workdir / "kubernetes"
    if not tree.exists():
        shutil.copytree(KUBERNETES, tree)
        for example in (tree / "secrets").glob("*.env.example"):
            shutil.copy(example, example.with_suffix(""))
    result = subprocess.run(
        offline([str(KUBECTL), "kustomize", str(tree / "overlays" / overlay)]),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def pod_templates(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every Deployment's and Job's pod template, by workload name."""
    return {d["metadata"]["name"]: d["spec"]["template"] for d in documents if d["kind"] in ("Deployment", "Job")}


def pod_labels(documents: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    labels = {name: template["metadata"]["labels"] for name, template in pod_templates(documents).items()}
    return {**labels, **OPERATOR_PODS}


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression  # the only operator these manifests use
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


@dataclass(frozen=True)
class Allow:
    """One edge a policy opens: `source` may reach `target` on `port` (None: every port)."""

    policy: str
    source: str
    target: str
    port: int | None


def peers(rule_peers: list[dict[str, Any]] | None, pods: dict[str, dict[str, str]]) -> list[str]:
    if not rule_peers:
        return [ANYWHERE]
    found: list[str] = []
    for peer in rule_peers:
        if "ipBlock" in peer:
            found.append(ANYWHERE)
        elif "namespaceSelector" in peer:
            namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            found.append(DNS if namespace == "kube-system" else f"namespace:{namespace}")
        else:
            found += [name for name, labels in pods.items() if matches(peer["podSelector"], labels)]
    return found


def allows(documents: list[dict[str, Any]]) -> list[Allow]:
    """Every edge every NetworkPolicy opens, ingress and egress alike."""
    pods = pod_labels(documents)
    edges: list[Allow] = []
    for policy in (d for d in documents if d["kind"] == "NetworkPolicy"):
        name, spec = policy["metadata"]["name"], policy["spec"]
        selected = [pod for pod, labels in pods.items() if matches(spec["podSelector"], labels)]
        for direction in ("ingress", "egress"):
            for rule in spec.get(direction, []):
                ports = [p["port"] for p in rule.get("ports", [])] or [None]
                for other in peers(rule.get("from" if direction == "ingress" else "to"), pods):
                    for pod in selected:
                        source, target = (other, pod) if direction == "ingress" else (pod, other)
                        edges += [Allow(f"{name}/{direction}", source, target, port) for port in ports]
    return edges


def reachable(edges: list[Allow], source: str, target: str, port: int) -> bool:
    """Both ends agree: the source's egress and the target's ingress each allow it."""

    def opened(direction: str) -> bool:
        return any(
            e.policy.endswith(direction) and e.source == source and e.target == target and e.port in (port, None)
            for e in edges
        )

    # A peer outside the namespace (KEDA, the operators) is not ours to restrict: its ingress decides.
    outside = source.startswith("namespace:") or source == ANYWHERE
    return (outside or opened("/egress")) and opened("/ingress")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded
