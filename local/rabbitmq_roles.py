"""`make run`'s RabbitMQ users: one per role, as in production, on the local broker.

Reads AMQP_URL (the local administrator, guest by default, and the vhost), keeps each role's
user name and a generated password in the secrets file (mode 600, kept for the next starts),
runs the real `rabbitmq-setup` on that vhost through the management API, and prints shell
`export` lines (for run.sh to eval, never to show) with each process's own AMQP URL:
CARTERO_<ROLE>_AMQP_URL, and the consumers' URLs in MONITOR_SMS/EMAIL_CONSUMER_ENV.

User names carry a random suffix saved with the passwords: RabbitMQ users are global to the
broker, and two `make run`s with their own var/ (the end-to-end tests) must not reset each
other's passwords. Where the management API does not answer (a broker without the management
plugin), every process keeps AMQP_URL and a note says so on stderr.

Usage: python local/rabbitmq_roles.py SECRETS_FILE
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pika
from pydantic import SecretStr

from cartero_common.amqp.setup import RoleCredentials, SetupError, SetupSettings, load_definitions, run
from cartero_common.amqp.urls import first_url

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "rabbitmq" / "definitions.json"
# role → the consumer env variable the monitor of that role's queue passes it in
MONITORED = {"consumer_sms": "MONITOR_SMS_CONSUMER_ENV", "consumer_email": "MONITOR_EMAIL_CONSUMER_ENV"}


def read_saved(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    saved = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("RABBITMQ_"):
            saved[name] = value
    return saved


def credentials_for(roles: list[str], path: Path) -> dict[str, RoleCredentials]:
    """Each role's saved user and password; the missing ones generated and appended (mode 600)."""
    saved = read_saved(path)
    suffix = secrets.token_hex(4)
    added = []
    found = {}
    for role in roles:
        user_key, password_key = f"RABBITMQ_{role.upper()}_USER", f"RABBITMQ_{role.upper()}_PASSWORD"
        if user_key not in saved or password_key not in saved:
            saved[user_key], saved[password_key] = f"cartero-{role}-{suffix}", secrets.token_urlsafe(24)
            added += [f"{user_key}={saved[user_key]}", f"{password_key}={saved[password_key]}"]
        found[role] = RoleCredentials(user=saved[user_key], password=SecretStr(saved[password_key]))
    if added:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as out:
            out.write("".join(f"{line}\n" for line in added))
    return found


def role_url(params: pika.URLParameters, scheme: str, credentials: RoleCredentials) -> str:
    # The default vhost as an empty path: no `%2F` for supervisord's `%(…)s` expansion to meet.
    vhost = "" if params.virtual_host == "/" else quote(params.virtual_host, safe="")
    user, password = quote(credentials.user, safe=""), quote(credentials.password.get_secret_value(), safe="")
    return f"{scheme}://{user}:{password}@{params.host}:{params.port}/{vhost}"


def consumer_env(variable: str, url: str) -> str:
    """The monitor's consumer environment with the consumer's own AMQP_URL added to what the
    operator already gave (MONITOR_SMS_CONSUMER_ENV, else MONITOR_CONSUMER_ENV)."""
    given = os.environ.get(variable) or os.environ.get("MONITOR_CONSUMER_ENV") or "{}"
    env = json.loads(given)
    env.setdefault("AMQP_URL", url)
    return json.dumps(env)


def main(argv: list[str]) -> int:
    secrets_file = Path(argv[1])
    # `make run` runs on one broker: of a list of nodes, the first is the one set up.
    amqp_url = first_url(os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/"))
    params = pika.URLParameters(amqp_url)
    scheme = amqp_url.split("://", 1)[0].lower()
    roles = [role.role for role in load_definitions(DEFINITIONS).roles]
    urls = dict.fromkeys(roles, amqp_url)
    api_url = os.environ.get("RABBITMQ_API_URL") or f"http://{params.host}:15672/api"
    settings = SetupSettings.model_validate(
        {
            "rabbitmq_api_url": api_url,
            "rabbitmq_admin_user": params.credentials.username,
            "rabbitmq_admin_password": SecretStr(params.credentials.password),
            "rabbitmq_vhost": params.virtual_host,
            "rabbitmq_definitions": DEFINITIONS,
            "rabbitmq_setup_timeout": 3.0,
            # model_validate reads no environment: the queue type is passed on by hand.
            "cartero_queue_type": os.environ.get("CARTERO_QUEUE_TYPE", "classic"),
            "cartero_php_declares": os.environ.get("CARTERO_PHP_DECLARES", "true"),
        }
    )
    try:
        httpx.get(f"{api_url.rstrip('/')}/overview", timeout=3.0)
        credentials = credentials_for(roles, secrets_file)
        run(settings, credentials)
        urls = {role: role_url(params, scheme, credentials[role]) for role in roles}
    except (httpx.HTTPError, SetupError) as exc:
        print(
            f"make run: no RabbitMQ user per role ({exc}); every process connects with AMQP_URL",
            file=sys.stderr,
        )
    for role, url in urls.items():
        print(f"export CARTERO_{role.upper()}_AMQP_URL={shlex.quote(url)}")
    for role, variable in MONITORED.items():
        print(f"export {variable}={shlex.quote(consumer_env(variable, urls[role]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
