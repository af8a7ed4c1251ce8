# Every Cartero image, one target each, built from the repository root:
#   docker build --target sender -t cartero/sender .
# (docker compose picks the target per service). Each image holds the shared package and one
# service, installed from the hashed lock files in requirements/ (`make lock` writes them).
#
# One convention for all: the code belongs to root and is read-only for the service, which runs
# as the unprivileged user `cartero` (UID/GID 10001); /var/lib/cartero is its one writable place.
# Ports are the services' settings defaults; an image sets only what differs (listen on 0.0.0.0).

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN /usr/sbin/useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin cartero \
 && mkdir -p /var/lib/cartero && chown 10001:10001 /var/lib/cartero
WORKDIR /app
# What every service needs, before any code: the same cached layer in every image.
COPY requirements/common.txt /tmp/requirements/common.txt
RUN pip install --require-hashes -r /tmp/requirements/common.txt
COPY cartero_common ./cartero_common
STOPSIGNAL SIGTERM


FROM base AS sender
COPY requirements/sender.txt /tmp/requirements/sender.txt
RUN pip install --require-hashes -r /tmp/requirements/sender.txt
COPY sender ./sender
RUN python -m compileall -q cartero_common sender
USER 10001:10001
ENV SENDER_HOST=0.0.0.0
# The slim image has no curl: the probe is the standard library, on the port the settings say.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from sender.config import Settings as S; u.urlopen('http://127.0.0.1:%d/healthz' % S().sender_port, timeout=4)"]
# uvicorn finishes the requests in flight on SIGTERM, then exits.
ENTRYPOINT ["python", "-m", "sender"]


FROM base AS token_validator
COPY requirements/token_validator.txt /tmp/requirements/token_validator.txt
RUN pip install --require-hashes -r /tmp/requirements/token_validator.txt
COPY token_validator ./token_validator
RUN python -m compileall -q cartero_common token_validator
USER 10001:10001
ENV TOKEN_VALIDATOR_HOST=0.0.0.0
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from token_validator.config import Settings as S; u.urlopen('http://127.0.0.1:%d/healthz' % S().token_validator_port, timeout=4)"]
# Arguments go to the service: `docker run -i cartero/token_validator create-admin --username NAME`.
ENTRYPOINT ["python", "-m", "token_validator"]


FROM base AS token_panel
COPY requirements/token_panel.txt /tmp/requirements/token_panel.txt
RUN pip install --require-hashes -r /tmp/requirements/token_panel.txt
COPY token_panel ./token_panel
RUN python -m compileall -q cartero_common token_panel
USER 10001:10001
ENV TOKEN_PANEL_HOST=0.0.0.0
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from token_panel.config import Settings as S; u.urlopen('http://127.0.0.1:%d/healthz' % S().token_panel_port, timeout=4)"]
ENTRYPOINT ["python", "-m", "token_panel"]


FROM base AS consumer_logs
COPY requirements/consumer_logs.txt /tmp/requirements/consumer_logs.txt
RUN pip install --require-hashes -r /tmp/requirements/consumer_logs.txt
COPY consumer_logs ./consumer_logs
RUN python -m compileall -q cartero_common consumer_logs
USER 10001:10001
ENV CONSUMER_LOGS_HOST=0.0.0.0 \
    DATABASE_URL=sqlite:////var/lib/cartero/consumer_logs.db
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from consumer_logs.config import Settings as S; u.urlopen('http://127.0.0.1:%d/healthz' % S().consumer_logs_port, timeout=4)"]
# On SIGTERM uvicorn finishes the requests in flight; then the consume loop stops, and events
# it had prefetched but not stored go back to the queue (compose allows 35 s).
# Arguments go to the service: `docker run cartero/consumer_logs migrate`.
ENTRYPOINT ["python", "-m", "consumer_logs"]


# Delivers the owners' webhooks: its own process and queues, so a slow receiver never holds
# up a message. Reaches the validator and the receivers (the internet) over HTTP.
FROM base AS consumer_webhooks
COPY requirements/consumer_webhooks.txt /tmp/requirements/consumer_webhooks.txt
RUN pip install --require-hashes -r /tmp/requirements/consumer_webhooks.txt
COPY consumer_webhooks ./consumer_webhooks
RUN python -m compileall -q cartero_common consumer_webhooks
USER 10001:10001
ENV METRICS_HOST=0.0.0.0
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from consumer_webhooks.config import Settings as S; u.urlopen('http://127.0.0.1:%d/metrics' % S().consumer_webhooks_metrics_port, timeout=4)"]
ENTRYPOINT ["python", "-m", "consumer_webhooks"]


# The DLQs over HTTP for the panel; the only part besides the consumers' replay-dlq that moves
# dead letters, with a RabbitMQ role limited to them.
FROM base AS dead_letters
COPY requirements/dead_letters.txt /tmp/requirements/dead_letters.txt
RUN pip install --require-hashes -r /tmp/requirements/dead_letters.txt
COPY dead_letters ./dead_letters
RUN python -m compileall -q cartero_common dead_letters
USER 10001:10001
ENV DEAD_LETTERS_HOST=0.0.0.0
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from dead_letters.config import Settings as S; u.urlopen('http://127.0.0.1:%d/healthz' % S().dead_letters_port, timeout=4)"]
ENTRYPOINT ["python", "-m", "dead_letters"]


FROM base AS consumer_sms
COPY requirements/consumer_sms.txt /tmp/requirements/consumer_sms.txt
RUN pip install --require-hashes -r /tmp/requirements/consumer_sms.txt
COPY consumer_sms ./consumer_sms
RUN python -m compileall -q cartero_common consumer_sms
USER 10001:10001
# The dedupe ledger defaults to SQLite in the one writable place; compose points DATABASE_URL at
# PostgreSQL instead, so replicas share it.
ENV DATABASE_URL=sqlite:////var/lib/cartero/consumer_sms.db
# Metrics on every interface of the container: Prometheus scrapes them over the container network.
ENV METRICS_HOST=0.0.0.0
# The consumer finishes the message in hand on SIGTERM; give it `docker stop -t` seconds to do so.
ENTRYPOINT ["python", "-m", "consumer_sms"]


FROM base AS consumer_email
COPY requirements/consumer_email.txt /tmp/requirements/consumer_email.txt
RUN pip install --require-hashes -r /tmp/requirements/consumer_email.txt
COPY consumer_email ./consumer_email
RUN python -m compileall -q cartero_common consumer_email
USER 10001:10001
ENV DATABASE_URL=sqlite:////var/lib/cartero/consumer_email.db \
    MAIL_DIR=/var/lib/cartero/mail \
    METRICS_HOST=0.0.0.0
ENTRYPOINT ["python", "-m", "consumer_email"]


# The monitor scales consumer containers with each queue's depth: `monitor_sms` and
# `monitor_email` under supervisord. It reaches the engine through DOCKER_HOST (in compose: tcp://
# to the Docker API gate, which allows only its consumer containers), so it needs no socket and no root.
# The consumer images must exist (compose builds them): the monitor builds an image itself only
# from a source checkout.
FROM base AS monitor
COPY requirements/monitor.txt /tmp/requirements/monitor.txt
RUN pip install --require-hashes -r /tmp/requirements/monitor.txt
COPY monitor ./monitor
RUN python -m compileall -q cartero_common monitor
USER 10001:10001
# The compose deployment's defaults: depth from Prometheus, consumers as containers. Per queue
# (monitor/supervisord.conf): the monitors' metrics ports, and the consumers' metrics ports —
# each consumer container has its own network namespace, so every replica keeps its port.
ENV MONITOR_SOURCE=prometheus \
    MONITOR_BACKEND=docker \
    METRICS_HOST=0.0.0.0 \
    PROMETHEUS_URL=http://prometheus:9090 \
    MONITOR_SMS_METRICS_PORT=9104 \
    MONITOR_EMAIL_METRICS_PORT=9105 \
    MONITOR_SMS_REPLICA_PORT_BASE=9101 \
    MONITOR_EMAIL_REPLICA_PORT_BASE=9102 \
    MONITOR_REPLICA_PORT_STEP=0 \
    MONITOR_STOPWAITSECS=55
ENTRYPOINT ["supervisord", "-c", "/app/monitor/supervisord.conf"]


# The Docker API gate: the only container that mounts the engine's socket (compose runs two, one
# per profile: `monitor` for the monitor, `discovery` for Prometheus). It forwards the requests
# docker_gate/rules.py allows and refuses the rest. The socket belongs to root and the docker
# group: compose adds that group (DOCKER_GID) to the unprivileged user, nothing else.
FROM base AS docker_gate
COPY requirements/docker_gate.txt /tmp/requirements/docker_gate.txt
RUN pip install --require-hashes -r /tmp/requirements/docker_gate.txt
COPY docker_gate ./docker_gate
RUN python -m compileall -q cartero_common docker_gate
USER 10001:10001
ENV DOCKER_GATE_HOST=0.0.0.0
# The gate itself; compose's healthcheck asks /_ping, which also needs the engine.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; from docker_gate.config import Settings as S; u.urlopen('http://127.0.0.1:%d/healthz' % S().docker_gate_port, timeout=4)"]
ENTRYPOINT ["python", "-m", "docker_gate"]
