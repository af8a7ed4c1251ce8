#!/usr/bin/env bash
# `make lock`: resolve pyproject.toml's dependencies once and write the hashed requirement files
# that `make run`, `make test` and every image install from (requirements/*.txt).
#
# requirements/all.txt is the one resolution (every extra); each other file is one install set,
# constrained to it, so a package has the same version in every set. Hashes pin the files
# themselves. `make lock` after editing pyproject.toml; `make test` fails while they disagree.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
uv=${UV:-$root/.venv/bin/uv}
out=${LOCK_DIR:-requirements}
mkdir -p "$out"
export UV_PYTHON_DOWNLOADS=never UV_CUSTOM_COMPILE_COMMAND="make lock"

compile() { # compile OUTPUT [uv pip compile options…]
  local output=$1
  shift
  "$uv" pip compile pyproject.toml --generate-hashes --python-version 3.11 --python-platform linux \
    --no-strip-extras --quiet --output-file "$out/$output" "$@"
}

compile all.txt --all-extras
# What every service needs (the images' shared layer), then each install set.
compile common.txt --constraint "$out/all.txt"
for extra in sender token_validator token_panel consumer_logs dead_letters consumer_sms consumer_email consumer_webhooks monitor docker_gate local dev; do
  compile "$extra.txt" --extra "$extra" --constraint "$out/all.txt"
done
# checkov's own set (pyproject's dependency group `checkov`), resolved apart: its pins clash with
# the services' (packaging<24), and it runs from a virtualenv of its own (.venv-checkov).
"$uv" pip compile --group checkov --generate-hashes --python-version 3.11 --python-platform linux \
  --quiet --output-file "$out/checkov.txt"
# The Kubernetes test tools (dependency group `kubernetes`: kubectl, the API's schemas), resolved
# apart too and installed into .venv/kubernetes.
"$uv" pip compile --group kubernetes --generate-hashes --python-version 3.11 --python-platform linux \
  --quiet --output-file "$out/kubernetes.txt"
echo "make lock: requirements/ written from pyproject.toml"
