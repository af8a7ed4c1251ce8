#!/usr/bin/env bash
# `make run`: the whole suite as local processes under supervisord (SQLite files under var/).
# Every setting can be overridden from the environment; see .env.example.
set -euo pipefail
# Everything the suite writes (var/: databases, logs, mail, secrets) is readable by this user
# only; supervisord runs in the foreground, so it and every service inherit this mask.
umask 077
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export CARTERO_VAR=${CARTERO_VAR:-$root/var}
export CARTERO_PYTHON=${CARTERO_PYTHON:-$root/.venv/bin/python}
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@localhost:5672/}
export TIMEZONE=${TIMEZONE:-Europe/Madrid}
export LOG_LEVEL=${LOG_LEVEL:-INFO}
# classic or quorum, for rabbitmq-setup (local/rabbitmq_roles.py) and every process alike.
export CARTERO_QUEUE_TYPE=${CARTERO_QUEUE_TYPE:-classic}
# Each service's port defaults to its setting's default (local/port_defaults.py prints them).
eval "$("$CARTERO_PYTHON" "$root/local/port_defaults.py")"
export SENDER_HOST=${SENDER_HOST:-127.0.0.1} SENDER_PORT=${SENDER_PORT:-$default_SENDER_PORT}
export CONSUMER_LOGS_HOST=${CONSUMER_LOGS_HOST:-127.0.0.1} CONSUMER_LOGS_PORT=${CONSUMER_LOGS_PORT:-$default_CONSUMER_LOGS_PORT}
export CONSUMER_SMS_METRICS_PORT=${CONSUMER_SMS_METRICS_PORT:-$default_CONSUMER_SMS_METRICS_PORT}
export CONSUMER_EMAIL_METRICS_PORT=${CONSUMER_EMAIL_METRICS_PORT:-$default_CONSUMER_EMAIL_METRICS_PORT}
export MONITOR_SMS_METRICS_PORT=${MONITOR_SMS_METRICS_PORT:-9104} MONITOR_EMAIL_METRICS_PORT=${MONITOR_EMAIL_METRICS_PORT:-9105}
# The consumers' and monitors' metrics listen on this host only (the images listen on 0.0.0.0).
export METRICS_HOST=${METRICS_HOST:-127.0.0.1}
# Consumer replica i listens on base + 10 * i: 9101, 9111, … for SMS; 9102, 9112, … for email.
export MONITOR_SMS_REPLICA_PORT_BASE=${MONITOR_SMS_REPLICA_PORT_BASE:-$CONSUMER_SMS_METRICS_PORT}
export MONITOR_EMAIL_REPLICA_PORT_BASE=${MONITOR_EMAIL_REPLICA_PORT_BASE:-$CONSUMER_EMAIL_METRICS_PORT}
# supervisord waits this long for a monitor to stop its consumers (MONITOR_GRACE, default 40 s: the consumers' own 30 s grace plus a margin).
grace=${MONITOR_GRACE:-40}
export MONITOR_STOPWAITSECS=$(( ${grace%.*} + 15 ))
export CONSUMER_LOGS_DATABASE_URL=${CONSUMER_LOGS_DATABASE_URL:-sqlite:///$CARTERO_VAR/consumer_logs.db}
export TOKEN_VALIDATOR_HOST=${TOKEN_VALIDATOR_HOST:-127.0.0.1} TOKEN_VALIDATOR_PORT=${TOKEN_VALIDATOR_PORT:-$default_TOKEN_VALIDATOR_PORT}
export TOKEN_VALIDATOR_DATABASE_URL=${TOKEN_VALIDATOR_DATABASE_URL:-sqlite:///$CARTERO_VAR/token_validator.db}
export VALIDATOR_URL=${VALIDATOR_URL:-http://$TOKEN_VALIDATOR_HOST:$TOKEN_VALIDATOR_PORT}
export CONSUMER_SMS_DATABASE_URL=${CONSUMER_SMS_DATABASE_URL:-sqlite:///$CARTERO_VAR/consumer_sms.db}
export CONSUMER_EMAIL_DATABASE_URL=${CONSUMER_EMAIL_DATABASE_URL:-sqlite:///$CARTERO_VAR/consumer_email.db}
# Embedded default: emails become .eml files; set EMAIL_PROVIDER=smtp (and SMTP_*) for a relay.
export EMAIL_PROVIDER=${EMAIL_PROVIDER:-file}
export MAIL_DIR=${MAIL_DIR:-$CARTERO_VAR/mail}
export TOKEN_PANEL_HOST=${TOKEN_PANEL_HOST:-127.0.0.1} TOKEN_PANEL_PORT=${TOKEN_PANEL_PORT:-$default_TOKEN_PANEL_PORT}
export CONSUMER_LOGS_URL=${CONSUMER_LOGS_URL:-http://$CONSUMER_LOGS_HOST:$CONSUMER_LOGS_PORT}
export DEAD_LETTERS_HOST=${DEAD_LETTERS_HOST:-127.0.0.1} DEAD_LETTERS_PORT=${DEAD_LETTERS_PORT:-$default_DEAD_LETTERS_PORT}
export DEAD_LETTERS_URL=${DEAD_LETTERS_URL:-http://$DEAD_LETTERS_HOST:$DEAD_LETTERS_PORT}
# On your own machine the message log keeps what each message said (compose's default is not to).
export CONSUMER_LOGS_STORE_CONTENT=${CONSUMER_LOGS_STORE_CONTENT:-true}
# consumer_webhooks's metrics port is also its readiness check.
export CONSUMER_WEBHOOKS_METRICS_PORT=${CONSUMER_WEBHOOKS_METRICS_PORT:-$default_CONSUMER_WEBHOOKS_METRICS_PORT}
# A webhook receiver for the demo runs on this machine, at an address production refuses.
export WEBHOOKS_ALLOW_PRIVATE_URLS=${WEBHOOKS_ALLOW_PRIVATE_URLS:-true}

mkdir -p "$CARTERO_VAR/log"
# A var/ from an older run, made under a looser umask, is closed up too.
chmod -R go-rwx "$CARTERO_VAR"

# The validator's three credentials, the panel's cookie-signing key and the message log's read and
# status keys: generated on the first start unless given, kept (mode 600) in
# $CARTERO_VAR/secrets.env for the next starts. A var/ from before a key existed gets the new key
# added.
secrets_file=$CARTERO_VAR/secrets.env
secret_names=(VALIDATOR_SERVICE_KEY VALIDATOR_ADMIN_KEY VALIDATOR_WEBHOOKS_KEY PANEL_SECRET_KEY CONSUMER_LOGS_READ_KEY CONSUMER_LOGS_STATUS_KEY DEAD_LETTERS_KEY)
if [[ -f $secrets_file ]]; then
  # shellcheck disable=SC1090
  source <(grep -E '^(VALIDATOR_(SERVICE|ADMIN|WEBHOOKS)_KEY|PANEL_SECRET_KEY|CONSUMER_LOGS_(READ|STATUS)_KEY|DEAD_LETTERS_KEY)=[A-Za-z0-9_-]+$' "$secrets_file" | sed 's/^/saved_/')
fi
new_secret() { "$CARTERO_PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))'; }
for name in "${secret_names[@]}"; do
  saved=saved_$name
  if [[ -z ${!name:-} ]]; then
    export "$name=${!saved:-$(new_secret)}"
  fi
  if [[ -z ${!saved:-} ]]; then
    printf '%s=%s\n' "$name" "${!name}" >>"$secrets_file"
  fi
done

if ! "$CARTERO_PYTHON" -m cartero_common wait-broker --timeout "${BROKER_WAIT_SECONDS:-5}"; then
  # The URL as written, its password masked (printf is a builtin: the URL is on no command line).
  broker=$(printf '%s' "$AMQP_URL" | "$CARTERO_PYTHON" -m cartero_common redact-url)
  cat >&2 <<MSG
make run: RabbitMQ is not reachable at $broker
  Start a local one, then run 'make run' again:
    sudo rabbitmq-server -detached            # Debian/Ubuntu package 'rabbitmq-server'
    docker run -d -p 5672:5672 rabbitmq:3     # or in a container
  Or point AMQP_URL at a broker you already have.
MSG
  exit 1
fi

# One RabbitMQ user per role, as in production (local/rabbitmq_roles.py): names and passwords
# kept in the secrets file, each process's own URL exported for supervisord, never printed.
eval "$("$CARTERO_PYTHON" "$root/local/rabbitmq_roles.py" "$secrets_file")"

DATABASE_URL=$CONSUMER_LOGS_DATABASE_URL "$CARTERO_PYTHON" -m consumer_logs migrate
DATABASE_URL=$TOKEN_VALIDATOR_DATABASE_URL "$CARTERO_PYTHON" -m token_validator migrate
# First start only: an admin account and a demo token, printed once and kept in first-run.txt.
DATABASE_URL=$TOKEN_VALIDATOR_DATABASE_URL "$CARTERO_PYTHON" -m token_validator first-run \
  --output "$CARTERO_VAR/first-run.txt"
# consumer_sms / consumer_email read CONSUMER_SMS_DATABASE_URL / CONSUMER_EMAIL_DATABASE_URL
# from the environment, whoever starts them (supervisord here, later the monitor).
"$CARTERO_PYTHON" -m consumer_sms migrate
"$CARTERO_PYTHON" -m consumer_email migrate

echo "Cartero is starting (logs in $CARTERO_VAR/log/; Ctrl-C stops everything) …"
"$root/.venv/bin/supervisord" -c "$root/local/supervisord.conf" &
supervisor=$!
# Ctrl-C or a TERM stops supervisord, which stops every service; its exit status is ours.
stop_suite() {
  kill -TERM "$supervisor" 2>/dev/null || true
  local status=0
  wait "$supervisor" || status=$?
  return "$status"
}
trap 'stop_suite; exit $?' INT TERM

# One line once every service answers its readiness check, so a curl run right after it works.
ready_url() { echo "$1=http://$2/$3"; }
if ! "$CARTERO_PYTHON" -m cartero_common wait-ready --timeout "${READY_TIMEOUT_SECONDS:-60}" \
    --log-dir "$CARTERO_VAR/log" --pid "$supervisor" \
    "$(ready_url sender "$SENDER_HOST:$SENDER_PORT" readyz)" \
    "$(ready_url token_validator "$TOKEN_VALIDATOR_HOST:$TOKEN_VALIDATOR_PORT" readyz)" \
    "$(ready_url token_panel "$TOKEN_PANEL_HOST:$TOKEN_PANEL_PORT" healthz)" \
    "$(ready_url consumer_logs "$CONSUMER_LOGS_HOST:$CONSUMER_LOGS_PORT" readyz)" \
    "$(ready_url consumer_webhooks "127.0.0.1:$CONSUMER_WEBHOOKS_METRICS_PORT" metrics)" \
    "$(ready_url dead_letters "$DEAD_LETTERS_HOST:$DEAD_LETTERS_PORT" readyz)" \
    "$(ready_url monitor_sms "127.0.0.1:$MONITOR_SMS_METRICS_PORT" metrics)" \
    "$(ready_url monitor_email "127.0.0.1:$MONITOR_EMAIL_METRICS_PORT" metrics)"; then
  echo "make run: Cartero did not come up within ${READY_TIMEOUT_SECONDS:-60} s (above: who, and the end of its log); stopping." >&2
  stop_suite || true
  exit 1
fi

cat <<MSG
Cartero is ready:
  sender        http://$SENDER_HOST:$SENDER_PORT        (API docs: /docs)
  validator     http://$TOKEN_VALIDATOR_HOST:$TOKEN_VALIDATOR_PORT        (API docs: /docs; admin API /v1/admin/)
  admin panel   http://$TOKEN_PANEL_HOST:$TOKEN_PANEL_PORT        (sign in with the first admin below)
  message log   http://$CONSUMER_LOGS_HOST:$CONSUMER_LOGS_PORT/v1/events   (bearer CONSUMER_LOGS_READ_KEY of the credentials file)
  webhooks      metrics http://127.0.0.1:$CONSUMER_WEBHOOKS_METRICS_PORT/metrics   (consumer_webhooks)
  dead letters  http://$DEAD_LETTERS_HOST:$DEAD_LETTERS_PORT/v1/dead-letters   (bearer DEAD_LETTERS_KEY; the panel's Dead letters pages)
  monitor_sms   metrics http://127.0.0.1:$MONITOR_SMS_METRICS_PORT/metrics   (starts consumer_sms, metrics :$CONSUMER_SMS_METRICS_PORT)
  monitor_email metrics http://127.0.0.1:$MONITOR_EMAIL_METRICS_PORT/metrics   (starts consumer_email, metrics :$CONSUMER_EMAIL_METRICS_PORT; mail in $MAIL_DIR)
  credentials   $secrets_file · first admin and demo token: $CARTERO_VAR/first-run.txt
MSG

wait "$supervisor"
