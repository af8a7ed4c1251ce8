"""The provisioned Grafana dashboards and the PromQL in them, with template variables filled in
as Grafana would for a chosen vhost."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support import ROOT

GRAFANA = ROOT / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
ALERTS = ROOT / "prometheus" / "alerts.yml"
# Grafana's own variables, as a test with one-second scrapes can afford them.
BUILTINS = {"__rate_interval": "30s", "__interval": "5s", "__range": "1m"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    ref: str
    expr: str


def load(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries() -> list[Query]:
    found = []
    for path in DASHBOARDS:
        dashboard = load(path)
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                found.append(Query(dashboard["uid"], panel["title"], target.get("refId", "?"), target.get("expr", "")))
    return found


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def substitute(expr: str, values: dict[str, str]) -> str:
    """`$var` and `${var}` replaced; an unknown variable is an error, never left in the query."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name in values:
            return values[name]
        if name in BUILTINS:
            return BUILTINS[name]
        raise KeyError(f"undefined variable ${name} in {expr!r}")

    return _VARIABLE.sub(value, expr)


def variable_values(vhost: str) -> dict[str, str]:
    """What the dashboard's variables become with `vhost` chosen and every queue ("All")."""
    values: dict[str, str] = {}
    for path in DASHBOARDS:
        for name, variable in variables(load(path)).items():
            if name == "vhost":
                values[name] = vhost
            elif variable.get("includeAll"):
                values[name] = variable.get("allValue") or ".*"
            else:
                values[name] = str(variable.get("current", {}).get("value", ""))
    return values


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (identifiers before `{`, `[` or in `__name__=~`)."""
    names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[)", expr))
    for alternatives in re.findall(r'__name__=~"([^"]+)"', expr):
        names |= set(alternatives.split("|"))
    keywords = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
    return {n for n in names if n not in keywords and not n.startswith("__")}
