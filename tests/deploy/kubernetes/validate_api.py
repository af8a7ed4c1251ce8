"""Validates rendered manifests offline; run by tests/deploy/test_kubernetes.py with the interpreter
of .venv/kubernetes (kubernetes-validate and jsonschema live there, not in the services' venv).

    python validate_api.py KUBERNETES_VERSION < documents.json > results.json

Reads a JSON list of documents; writes one result per document: its kind and name, which schema
judged it (`kubernetes` for the API's own kinds, `crd` for the custom ones, `none` when this script
has no schema for it) and the error, or null. The API's kinds are checked strictly (an unknown
field fails). A custom resource against its CRD's openAPIV3Schema, copied from the operator's
release into crds/ (each file's `$comment` names the release and path), made strict the same way:
an object with listed properties and no `x-kubernetes-preserve-unknown-fields` takes no other.
(validate_crds.mjs checks KEDA's and CloudNativePG's against the npm models too; those let unknown
fields through.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

HERE = Path(__file__).resolve().parent
CRDS = HERE / "crds"
CRD_SCHEMAS = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): CRDS / "rabbitmqcluster-v1beta1.schema.json",
    ("keda.sh/v1alpha1", "ScaledObject"): CRDS / "scaledobject-keda-v1alpha1.schema.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): CRDS / "triggerauthentication-keda-v1alpha1.schema.json",
    ("postgresql.cnpg.io/v1", "Cluster"): CRDS / "cluster-cnpg-v1.schema.json",
}
# The API server accepts these on every object; a CRD's schema leaves them out.
TYPE_META = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}


def strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


def crd_validator(path: Path) -> jsonschema.protocols.Validator:
    schema = strict(json.loads(path.read_text()))
    schema["properties"] = {**TYPE_META, **schema.get("properties", {})}
    return jsonschema.Draft7Validator(schema)


def judge(document: dict[str, Any], version: str) -> dict[str, Any]:
    kind, api = document.get("kind", ""), document.get("apiVersion", "")
    result: dict[str, Any] = {"kind": kind, "name": document.get("metadata", {}).get("name"), "error": None}
    schema = CRD_SCHEMAS.get((api, kind))
    if schema is not None:
        result["schema"] = "crd"
        errors = sorted(crd_validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
        if errors:
            result["error"] = "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
        return result
    try:
        kubernetes_validate.validate(document, version, strict=True)
        result["schema"] = "kubernetes"
    except kubernetes_validate.SchemaNotFoundError:
        result["schema"] = "none"
    except kubernetes_validate.ValidationError as exc:
        result["schema"] = "kubernetes"
        result["error"] = f"{'/'.join(map(str, exc.path))}: {exc.message}"
    return result


def main() -> None:
    version = sys.argv[1]
    documents = json.load(sys.stdin)
    json.dump([judge(document, version) for document in documents], sys.stdout)


if __name__ == "__main__":
    main()
