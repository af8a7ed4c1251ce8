#!/usr/bin/env bash
# The real services the tests and the benchmark talk to: PostgreSQL on 5432, RabbitMQ on 5672 with
# its management API (isolated vhosts) and Prometheus endpoint. Starts what is installed but down;
# does nothing when everything already answers.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 60); do port_open "$port" && return 0; sleep 1; done
  echo "ensure-services: $name did not come up on port $port" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null || {
    echo "ensure-services: $2 is not answering and '$1' is not installed; start it, then try again" >&2
    exit 1
  }
}

if ! port_open 5432; then
  need pg_ctlcluster PostgreSQL
  echo "ensure-services: starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_port 5432 PostgreSQL
fi
if ! port_open 5672; then
  need rabbitmq-server RabbitMQ
  echo "ensure-services: starting RabbitMQ" >&2
  rabbitmq-server -detached
  wait_port 5672 RabbitMQ
fi
if ! port_open 15672 || ! port_open 15692; then
  need rabbitmq-plugins "RabbitMQ's management API"
  echo "ensure-services: enabling RabbitMQ's management and Prometheus plugins" >&2
  rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus >/dev/null
  wait_port 15672 "RabbitMQ management"
  wait_port 15692 "RabbitMQ Prometheus"
fi
