// Validates the KEDA and CloudNativePG resources among rendered manifests with the validation
// functions the pinned @kubernetes-models packages ship (package-lock.json); run by
// tests/deploy/test_kubernetes.py: `node validate_crds.mjs < documents.json > results.json`.
// One result per document it knows: kind, name and the error, or null. These models check types,
// required fields and enums; they let unknown fields through (the test asserts the fields it
// relies on by name).
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication";
import { Cluster } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1/Cluster";

const models = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "keda.sh/v1alpha1/TriggerAuthentication": TriggerAuthentication,
  "postgresql.cnpg.io/v1/Cluster": Cluster,
};

const documents = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const document of documents) {
  const Model = models[`${document.apiVersion}/${document.kind}`];
  if (!Model) continue;
  let error = null;
  try {
    new Model(document).validate();
  } catch (exc) {
    error = String(exc.message ?? exc);
  }
  results.push({ apiVersion: document.apiVersion, kind: document.kind, name: document.metadata?.name, error });
}
process.stdout.write(JSON.stringify(results));
