#!/usr/bin/env bash
# Installs the Debian packages the tests use for real, only those still missing.
# One line each: the package, and what needs it.
set -euo pipefail
packages=(
  curl          # health probes in scripts
  prometheus    # a real Prometheus and promtool: tests/deploy (config, rules, dashboard queries), tests/monitor (depth source)
  php-cli       # a real PHP client publishing like the team's senders (consumer tests)
  php-amqplib
  chromium      # token_panel's browser tests (Playwright drives /usr/bin/chromium; no browser downloads)
  nginx-light   # the documented TLS reverse proxy in front of the sender (tests/deploy/test_tls_proxy.py)
  openssl       # a throwaway certificate for that test
  faketime      # libfaketime: moves the clock of real validator and sender processes (tests/token_validator/test_scale_out.py)
  iproute2      # `ip`: network namespaces, bridges and veths for the three-node RabbitMQ cluster (tests/cluster, make test-cluster)
)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) -ne 0 ]]; then
  echo "install-test-deps: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "install-test-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
