#!/usr/bin/env bash
# `make run`: the whole suite as local processes under supervisord (SQLite files under var/).
# Every setting can be overridden from the environment; see .env.example.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export CARTERO_VAR=${CARTERO_VAR:-$root/var}
export CARTERO_PYTHON=${CARTERO_PYTHON:-$root/.venv/bin/python}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@localhost:5672/}
export TIMEZONE=${TIMEZONE:-Europe/Madrid}
export LOG_LEVEL=${LOG_LEVEL:-INFO}
export SENDER_HOST=${SENDER_HOST:-127.0.0.1} SENDER_PORT=${SENDER_PORT:-8000}
export CONSUMER_LOGS_HOST=${CONSUMER_LOGS_HOST:-127.0.0.1} CONSUMER_LOGS_PORT=${CONSUMER_LOGS_PORT:-8003}
export CONSUMER_SMS_METRICS_PORT=${CONSUMER_SMS_METRICS_PORT:-9101}
export CONSUMER_EMAIL_METRICS_PORT=${CONSUMER_EMAIL_METRICS_PORT:-9102}
export CONSUMER_LOGS_DATABASE_URL=${CONSUMER_LOGS_DATABASE_URL:-sqlite:///$CARTERO_VAR/consumer_logs.db}
export CONSUMER_SMS_DATABASE_URL=${CONSUMER_SMS_DATABASE_URL:-sqlite:///$CARTERO_VAR/consumer_sms.db}
export CONSUMER_EMAIL_DATABASE_URL=${CONSUMER_EMAIL_DATABASE_URL:-sqlite:///$CARTERO_VAR/consumer_email.db}
# Embedded default: emails become .eml files; set EMAIL_PROVIDER=smtp (and SMTP_*) for a relay.
export EMAIL_PROVIDER=${EMAIL_PROVIDER:-file}
export MAIL_DIR=${MAIL_DIR:-$CARTERO_VAR/mail}

mkdir -p "$CARTERO_VAR/log"

if ! "$CARTERO_PYTHON" -m cartero_common wait-broker --timeout "${BROKER_WAIT_SECONDS:-5}"; then
  cat >&2 <<MSG
make run: RabbitMQ is not reachable at ${AMQP_URL%%@*}@${AMQP_URL#*@}
  Start a local one, then run 'make run' again:
    sudo rabbitmq-server -detached            # Debian/Ubuntu package 'rabbitmq-server'
    docker run -d -p 5672:5672 rabbitmq:3     # or in a container
  Or point AMQP_URL at a broker you already have.
MSG
  exit 1
fi

DATABASE_URL=$CONSUMER_LOGS_DATABASE_URL "$CARTERO_PYTHON" -m consumer_logs migrate
# consumer_sms / consumer_email read CONSUMER_SMS_DATABASE_URL / CONSUMER_EMAIL_DATABASE_URL
# from the environment, whoever starts them (supervisord here, later the monitor).
"$CARTERO_PYTHON" -m consumer_sms migrate
"$CARTERO_PYTHON" -m consumer_email migrate

cat <<MSG
Cartero is starting (logs in $CARTERO_VAR/log/, Ctrl-C stops everything):
  sender        http://$SENDER_HOST:$SENDER_PORT        (API docs: /docs)
  message log   http://$CONSUMER_LOGS_HOST:$CONSUMER_LOGS_PORT/v1/events
  consumer_sms  metrics http://127.0.0.1:$CONSUMER_SMS_METRICS_PORT/metrics
  consumer_email metrics http://127.0.0.1:$CONSUMER_EMAIL_METRICS_PORT/metrics  (mail in $MAIL_DIR)
MSG

exec "$root/.venv/bin/supervisord" -c "$root/local/supervisord.conf"
