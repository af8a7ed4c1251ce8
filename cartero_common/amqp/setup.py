"""`python -m cartero_common rabbitmq-setup`: the broker's vhost, users, queues and policies,
applied through the management HTTP API from `rabbitmq/definitions.json` and the environment.

The queue type comes from `CARTERO_QUEUE_TYPE` (classic by default); the setup refuses one that
would break a client's declares (`setup_queue_type.py`).

One user per role (`cartero_roles` in the definitions: sender, each consumer, monitor, php), each
with only the configure/write/read patterns its code needs; the names and passwords come from
`RABBITMQ_<ROLE>_USER` (default: the role's name) and `RABBITMQ_<ROLE>_PASSWORD`. A role without
a password is left alone (compose's preflight refuses to start without them all).

A one-shot step rather than definitions imported at boot: a node that imports definitions at
boot skips creating its default user, so the administrator from RABBITMQ_DEFAULT_USER/PASS would
never exist, and the passwords would have to be written into a file. Every call is an
idempotent PUT, so the step runs again on every `docker compose up`.
Ref: https://www.rabbitmq.com/docs/definitions#import-on-boot
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cartero_common.amqp.queue_type import CLASSIC, QUORUM, QueueType
from cartero_common.amqp.setup_queue_type import QueueTypeRefused, decide, probe_url, redeclare_matches

log = logging.getLogger("cartero_common.rabbitmq_setup")

# RabbitMQ 4.0 gives every quorum queue a delivery limit of 20 (3.x had none) and reads
# `delivery-limit: -1` as no limit; 3.x would read -1 as a limit below any count, so there a -1
# is left out (no limit is already the default).
UNLIMITED_DELIVERIES_SINCE = (4, 0)


class SetupError(Exception):
    """The broker refused part of the topology, or could not be reached."""


class SetupSettings(BaseSettings):
    """Environment of the setup step (compose passes the values from `.env`)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    rabbitmq_api_url: str = "http://localhost:15672/api"
    rabbitmq_admin_user: str = "guest"
    rabbitmq_admin_password: SecretStr = SecretStr("guest")
    rabbitmq_vhost: str = "cartero"
    rabbitmq_definitions: Path = Path("rabbitmq/definitions.json")
    rabbitmq_setup_timeout: float = 60.0
    # The AMQP port of the management API's host, for the probe of argument-free redeclares.
    rabbitmq_amqp_port: int = 5672
    cartero_queue_type: QueueType = CLASSIC
    # Whether PHP clients declare the shared queues argument-free: quorum is refused where
    # their declare would be answered 406, unless this is false.
    cartero_php_declares: bool = True


class RoleCredentials(BaseSettings):
    """`RABBITMQ_<ROLE>_USER` / `RABBITMQ_<ROLE>_PASSWORD` for one role (see `for_role`)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    user: str = ""
    password: SecretStr = SecretStr("")

    @classmethod
    def for_role(cls, role: str) -> RoleCredentials:
        return cls(_env_prefix=f"rabbitmq_{role}_")


class RoleSpec(BaseModel):
    """One role's user: management tags and the three permission patterns on the vhost. A
    pattern that matches nothing is `^$` (RabbitMQ has no "no permission" value of its own)."""

    model_config = ConfigDict(extra="ignore")

    role: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    tags: list[str] = Field(default_factory=list)
    configure: str
    write: str
    read: str

    def permissions(self) -> dict[str, str]:
        return {"configure": self.configure, "write": self.write, "read": self.read}


class QueueSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    durable: bool = True
    auto_delete: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)


class ExchangeSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    type: str = "direct"
    durable: bool = True
    auto_delete: bool = False
    internal: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)


class BindingSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source: str
    destination: str
    destination_type: str = "queue"
    routing_key: str = ""
    arguments: dict[str, Any] = Field(default_factory=dict)


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    pattern: str
    apply_to: str = Field("queues", alias="apply-to")
    priority: int = 0
    definition: dict[str, Any]
    # Keys for quorum queues only (delivery limit, at-least-once dead-lettering). A key a queue's
    # type does not support makes the broker skip the whole policy for that queue, so they cannot
    # simply be in `definition` on a deployment with classic queues.
    on_quorum: dict[str, Any] = Field(default_factory=dict, alias="cartero_on_quorum")

    def definition_for(self, queue_type: str, version: tuple[int, ...]) -> dict[str, Any]:
        if queue_type != QUORUM:
            return dict(self.definition)
        extra = dict(self.on_quorum)
        if extra.get("delivery-limit") == -1 and version < UNLIMITED_DELIVERIES_SINCE:
            del extra["delivery-limit"]
        return {**self.definition, **extra}


class Definitions(BaseModel):
    """What `rabbitmq/definitions.json` holds, minus the vhost name (that comes from the env)."""

    description: str = ""
    queues: list[QueueSpec]
    policies: list[PolicySpec]
    exchanges: list[ExchangeSpec] = Field(default_factory=list)
    bindings: list[BindingSpec] = Field(default_factory=list)
    roles: list[RoleSpec] = Field(default_factory=list)


@dataclass
class SetupReport:
    broker_version: str
    queue_type: str
    reason: str
    queues: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)  # role → user name
    skipped_roles: list[str] = field(default_factory=list)  # no password given
    other_users: list[str] = field(default_factory=list)  # allowed on the vhost, in no role


def load_definitions(path: Path) -> Definitions:
    """Reads the broker's own export format (the queue type is CARTERO_QUEUE_TYPE's, not the file's)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    vhosts = raw.get("vhosts") or [{}]
    vhost = vhosts[0]
    metadata = vhost.get("metadata") or {}
    return Definitions(
        description=vhost.get("description", metadata.get("description", "")),
        queues=raw.get("queues", []),
        policies=raw.get("policies", []),
        exchanges=raw.get("exchanges", []),
        bindings=raw.get("bindings", []),
        roles=raw.get("cartero_roles", []),
    )


def parse_version(text: str) -> tuple[int, ...]:
    """`3.13.7` → (3, 13, 7); `4.1.0-rc.1` → (4, 1, 0)."""
    return tuple(int(part) for part in re.findall(r"\d+", text.split("-")[0])[:3])


class ManagementApi:
    """The few management API calls the setup needs, with errors turned into `SetupError`."""

    def __init__(self, url: str, user: str, password: str, *, timeout: float = 10.0) -> None:
        self.client = httpx.Client(base_url=url.rstrip("/"), auth=(user, password), timeout=timeout)

    def close(self) -> None:
        self.client.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.client.request(method, path, json=body)
        if response.status_code == 401:
            raise SetupError("the management API refused the admin credentials (RABBITMQ_ADMIN_USER/PASSWORD)")
        if response.status_code >= 400:
            raise SetupError(f"{method} {path} answered {response.status_code}: {_reason(response)}")
        return response.json() if response.content else None

    def wait(self, timeout: float) -> dict[str, Any]:
        """`/overview` once the API answers (the node may still be starting its plugins)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                overview: dict[str, Any] = self.call("GET", "/overview")
                return overview
            except (httpx.TransportError, SetupError) as exc:
                if isinstance(exc, SetupError) and "admin credentials" in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise SetupError(f"the management API at {self.client.base_url} did not answer: {exc}") from exc
                time.sleep(1.0)

    def queue_types(self, vhost: str) -> dict[str, str]:
        """Type of every lasting queue in `vhost` (exclusive and auto-delete ones are classic
        whatever the default, so they constrain nothing)."""
        columns = "name,type,durable,exclusive,auto_delete"
        response = self.client.get(f"/queues/{_q(vhost)}", params={"columns": columns})
        if response.status_code == 404:  # no such vhost yet
            return {}
        if response.status_code >= 400:
            raise SetupError(f"listing queues answered {response.status_code}: {_reason(response)}")
        return {
            q["name"]: q.get("type", "classic")
            for q in response.json()
            if q.get("durable") and not q.get("exclusive") and not q.get("auto_delete")
        }


def apply(
    api: ManagementApi,
    definitions: Definitions,
    settings: SetupSettings,
    credentials: Mapping[str, RoleCredentials] | None = None,
) -> SetupReport:
    """Vhost (with its default queue type), the administrator's permissions, one user per role,
    policies, queues. `credentials` maps a role to its user and password (default: from the
    environment, `RoleCredentials.for_role`)."""
    overview = api.wait(settings.rabbitmq_setup_timeout)
    version_text = str(overview.get("rabbitmq_version", "0"))
    vhost = _q(settings.rabbitmq_vhost)
    queue_type, reason = choose_queue_type(api, settings, parse_version(version_text))
    api.call("PUT", f"/vhosts/{vhost}", {"description": definitions.description, "default_queue_type": queue_type})
    everything = {"configure": ".*", "write": ".*", "read": ".*"}
    api.call("PUT", f"/permissions/{vhost}/{_q(settings.rabbitmq_admin_user)}", everything)
    report = SetupReport(broker_version=version_text, queue_type=queue_type, reason=reason)
    for role in definitions.roles:
        given = credentials.get(role.role) if credentials is not None else RoleCredentials.for_role(role.role)
        password = given.password.get_secret_value() if given is not None else ""
        if given is None or not password:
            log.warning("no password for this role; its user is left as it is", extra={"role": role.role})
            report.skipped_roles.append(role.role)
            continue
        user = given.user or role.role
        if user == settings.rabbitmq_admin_user:
            raise SetupError(f"role {role.role!r} names the administrator {user!r}; give it a user of its own")
        for other, taken in report.users.items():
            if taken == user:
                # One user, two roles: the second's permissions would silently replace the first's.
                raise SetupError(f"roles {other!r} and {role.role!r} both name the user {user!r}; give each its own")
        # PUT sets the password every run: changing it in .env and running the setup rotates it.
        api.call("PUT", f"/users/{_q(user)}", {"password": password, "tags": ",".join(role.tags)})
        api.call("PUT", f"/permissions/{vhost}/{_q(user)}", role.permissions())
        report.users[role.role] = user
    # Anyone else allowed on the vhost (the single application user of older versions, a user
    # made by hand) keeps whatever rights it had: named, so the operator can remove it.
    # (A role skipped for want of a password counts by its default name: it is left as it is.)
    known = {settings.rabbitmq_admin_user, *report.users.values(), *report.skipped_roles}
    for permission in api.call("GET", f"/vhosts/{vhost}/permissions") or []:
        user = str(permission.get("user", ""))
        if user not in known:
            log.warning(
                "a user outside the roles may use this vhost; remove it unless it is yours "
                "(rabbitmqctl delete_user, or clear_permissions -p <vhost>)",
                extra={"user": user, "vhost": settings.rabbitmq_vhost},
            )
            report.other_users.append(user)
    # Policies before queues, so a queue has its limits from the moment it exists.
    for policy in definitions.policies:
        body = {
            "pattern": policy.pattern,
            "apply-to": policy.apply_to,
            "priority": policy.priority,
            "definition": policy.definition_for(queue_type, parse_version(version_text)),
        }
        api.call("PUT", f"/policies/{vhost}/{_q(policy.name)}", body)
        report.policies.append(policy.name)
    for queue in definitions.queues:
        # Quorum: the type said on the declare too, as every client of ours says it.
        arguments = {**queue.arguments, "x-queue-type": QUORUM} if queue_type == QUORUM else queue.arguments
        body = {"durable": queue.durable, "auto_delete": queue.auto_delete, "arguments": arguments}
        try:
            api.call("PUT", f"/queues/{vhost}/{_q(queue.name)}", body)
        except SetupError as exc:
            raise SetupError(
                f"queue {queue.name!r} exists with other properties than {body} (declared elsewhere with "
                f"arguments?); shared queues must stay argument-free but for their type: {exc}"
            ) from exc
        report.queues.append(queue.name)
    # The route exchanges (`cartero_common.wire.route_exchange`), each bound to its one queue:
    # what the sender's and the monitor's roles may publish to, instead of the default exchange.
    for exchange in definitions.exchanges:
        body = {
            "type": exchange.type,
            "durable": exchange.durable,
            "auto_delete": exchange.auto_delete,
            "internal": exchange.internal,
            "arguments": exchange.arguments,
        }
        api.call("PUT", f"/exchanges/{vhost}/{_q(exchange.name)}", body)
        report.exchanges.append(exchange.name)
    for binding in definitions.bindings:
        kind = "q" if binding.destination_type == "queue" else "e"
        # Binding again what is bound already changes nothing (the broker answers 201 as well).
        api.call(
            "POST",
            f"/bindings/{vhost}/e/{_q(binding.source)}/{kind}/{_q(binding.destination)}",
            {"routing_key": binding.routing_key, "arguments": binding.arguments},
        )
    return report


def choose_queue_type(api: ManagementApi, settings: SetupSettings, version: tuple[int, ...]) -> tuple[str, str]:
    """CARTERO_QUEUE_TYPE, once `setup_queue_type.decide` found it safe (else `SetupError`), and why."""
    wanted = settings.cartero_queue_type
    probed: bool | None = None
    if wanted == QUORUM and settings.cartero_php_declares:
        probed = probe_redeclare(api, settings)
    try:
        verdict = decide(
            wanted,
            version,
            api.queue_types(settings.rabbitmq_vhost),
            php_declares=settings.cartero_php_declares,
            redeclare_matches=probed,
        )
    except QueueTypeRefused as exc:
        raise SetupError(str(exc)) from exc
    if verdict.warning:
        log.warning(verdict.warning)
    log.info("queue type", extra={"queue_type": verdict.queue_type, "reason": verdict.reason})
    return verdict.queue_type, verdict.reason


def probe_redeclare(api: ManagementApi, settings: SetupSettings) -> bool | None:
    """`setup_queue_type.redeclare_matches` in a scratch vhost whose default type is quorum, as
    the setup makes the real one; the vhost is deleted afterwards whatever happened."""
    scratch = f"cartero-setup-probe-{uuid.uuid4().hex[:10]}"
    admin = settings.rabbitmq_admin_user
    api.call("PUT", f"/vhosts/{_q(scratch)}", {"description": "rabbitmq-setup probe", "default_queue_type": QUORUM})
    try:
        api.call("PUT", f"/permissions/{_q(scratch)}/{_q(admin)}", {"configure": ".*", "write": ".*", "read": ".*"})
        password = settings.rabbitmq_admin_password.get_secret_value()
        url = probe_url(settings.rabbitmq_api_url, admin, password, scratch, settings.rabbitmq_amqp_port)
        return redeclare_matches(url)
    finally:
        api.call("DELETE", f"/vhosts/{_q(scratch)}")


def run(settings: SetupSettings, credentials: Mapping[str, RoleCredentials] | None = None) -> SetupReport:
    definitions = load_definitions(settings.rabbitmq_definitions)
    api = ManagementApi(
        settings.rabbitmq_api_url, settings.rabbitmq_admin_user, settings.rabbitmq_admin_password.get_secret_value()
    )
    try:
        return apply(api, definitions, settings, credentials)
    finally:
        api.close()


def _q(name: str) -> str:
    return quote(name, safe="")


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("reason") or body.get("error") or body)
