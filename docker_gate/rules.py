"""Every request the gate lets through to the Docker Engine API, and why: one explicit allow-list.

Anything not written here is refused. A rule names a method, a path (after the optional
`/v1.NN` version prefix) and the query keys it takes; for `POST /containers/create` the body is
checked field by field: the image must be one of the configured consumer images, the labels the
monitor's, the network the configured one, and every field that could reach the host (privileged
mode, binds, mounts, devices, added capabilities, host namespaces, security options, sysctls…)
absent or at its default. Container operations (inspect, start, stop, remove) apply only to
containers labelled `cartero.role=consumer`; the gate looks the label up on the engine and then
forwards the request by the container's full id, so a name cannot be swapped in between.

Two profiles:
- `monitor`: what `monitor/docker_backend.py` calls through the `docker` SDK — list its consumers,
  inspect an image by name, create/inspect/start/stop/remove consumer containers. No builds, no
  pulls, no exec, no archive, no attach.
- `discovery`: what Prometheus' `docker_sd_configs` calls — list the consumer containers and the
  networks. No inspect (it returns each container's environment, i.e. its secrets).

The body checks are strict in the ways the engine is lenient: Go's JSON decoder matches keys case
insensitively and merges a repeated object into the first, so a key the rules do not know (in any
spelling) or a key given twice refuses the request, and the proxy forwards the checked document
re-encoded, never the bytes it received.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from cartero_common.containers import CONSUMER, CONSUMER_ROLE, MONITOR, QUEUE, ROLE, SLOT

Profile = Literal["monitor", "discovery"]

OWNED_LABEL = f"{ROLE}={CONSUMER_ROLE}"
MONITOR_LABELS = frozenset({ROLE, QUEUE, MONITOR, CONSUMER, SLOT})
REQUIRED_LABELS = frozenset({ROLE, QUEUE, MONITOR})

_VERSION_PREFIX = re.compile(r"^/v\d+\.\d+(?=/)")
# Path characters the rules ever need: no percent-encoding, so the engine reads the same path.
_PATH = re.compile(r"^/[A-Za-z0-9_.:/-]*$")
_CONTAINER = r"(?P<container>[A-Za-z0-9][A-Za-z0-9_.-]{0,127})"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ENV_ENTRY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=", re.DOTALL)
# The variables a consumer reads (its Settings), and nothing else: an environment is code too
# (PYTHONWARNINGS with BROWSER runs a command as the interpreter starts, LD_PRELOAD loads a
# library, *_PROXY reroutes traffic), so a name the consumers do not read is refused.
_ENV_NAME = re.compile(
    r"(?:AMQP|DATABASE|CONSUMER|EMAIL|SMTP|SMS|MAIL|METRICS)_[A-Z0-9_]+|TIMEZONE|LOG_LEVEL|CARTERO_QUEUE_TYPE"
)
# The names the monitor gives its containers (monitor/docker_backend.py): `cartero-<consumer>-
# <slot>-<6 hex>`. Any other name could be a service's (`token_validator`, `rabbitmq`) and would
# answer for it in the network's DNS.
_CONSUMER_NAME = re.compile(r"cartero-consumer_[a-z]{1,20}-\d{1,4}-[0-9a-f]{6}")
_BOOLEAN = {"0", "1", "true", "false", "True", "False"}
_FALSE = {"0", "false", "False"}


@dataclass(frozen=True)
class Policy:
    """What the operator configured: the images the monitor may run and the network it uses."""

    images: frozenset[str]
    network: str


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # as sent, with or without the version prefix, without the query
    query: str = ""  # the raw query string
    body: bytes = b""


@dataclass(frozen=True)
class Verdict:
    """`allowed` with the query and body to forward (re-encoded), or a refusal with its reason.
    `container` is set when the request names a container: the proxy forwards it only if the
    engine says that container is a consumer (`owned`), by its full id."""

    allowed: bool
    reason: str = ""
    path: str = ""  # without the version prefix; the proxy puts the client's prefix back
    query: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    container: str = ""


def refuse(reason: str) -> Verdict:
    return Verdict(allowed=False, reason=reason)


class Refused(ValueError):
    """A body or query the rules do not accept; the message says which field and why."""


# --- queries -------------------------------------------------------------------------------------

QueryCheck = Callable[[str], bool]


def _any(_: str) -> bool:
    return True


def _boolean(value: str) -> bool:
    return value in _BOOLEAN


def _false(value: str) -> bool:
    return value in _FALSE


def _integer(value: str) -> bool:
    return re.fullmatch(r"-?\d{1,9}", value) is not None


def _name(value: str) -> bool:
    return _NAME.fullmatch(value) is not None


def consumer_variable(name: str) -> bool:
    """Whether a container may be created with the environment variable `name`."""
    return _ENV_NAME.fullmatch(name) is not None


def _consumer_name(value: str) -> bool:
    return _CONSUMER_NAME.fullmatch(value) is not None


def _owned_filter(value: str) -> bool:
    """The list is filtered to the consumers: `label=cartero.role=consumer` among the filters, in
    either form the engine accepts (`{"label": ["k=v"]}` from the Python SDK, `{"label":
    {"k=v": true}}` from Go clients such as Prometheus)."""
    try:
        filters = _strict_json(value.encode())
    except Refused:
        return False
    if not isinstance(filters, dict):
        return False
    labels = filters.get("label")
    if isinstance(labels, list):
        return OWNED_LABEL in labels
    if isinstance(labels, dict):
        return labels.get(OWNED_LABEL) is True
    return False


def check_query(raw: str, allowed: Mapping[str, QueryCheck], *, required: Sequence[str] = ()) -> list[tuple[str, str]]:
    pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=False)
    seen: set[str] = set()
    for key, value in pairs:
        if key in seen:
            raise Refused(f"query parameter {key!r} given twice")
        seen.add(key)
        check = allowed.get(key)
        if check is None:
            raise Refused(f"query parameter {key!r} is not allowed here")
        if not check(value):
            raise Refused(f"query parameter {key}={value!r} is not allowed")
    for key in required:
        if key not in seen:
            raise Refused(f"query parameter {key!r} is required here")
    return pairs


# --- JSON bodies ---------------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        folded = key.casefold()
        if folded in seen:
            raise Refused(f"key {key!r} given twice (or in two spellings)")
        seen.add(folded)
    return dict(pairs)


def _strict_json(body: bytes) -> Any:
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates)
    except Refused:
        raise
    except ValueError as exc:
        raise Refused(f"the body is not JSON: {exc}") from None


def _empty_body(body: bytes) -> None:
    if body.strip() not in (b"", b"{}", b"null"):
        raise Refused("this endpoint takes no body")


def _is_default(value: Any) -> bool:
    """null, false, "", [] or {}: what the engine treats as "not set" for the fields it is used on."""
    return value is None or value is False or value == "" or value == [] or value == {}


# HostConfig fields the gate accepts, and what each may be. Every other HostConfig field is
# refused whatever its value (MaskedPaths: [] would unmask /proc, so "empty" is not "default" for
# every field). Ref: https://docs.docker.com/reference/api/engine/version/v1.43/#tag/Container/operation/ContainerCreate
HOST_CONFIG_DEFAULT_ONLY = frozenset(
    {
        "Privileged",
        "Binds",
        "Mounts",
        "Devices",
        "DeviceCgroupRules",
        "DeviceRequests",
        "CapAdd",
        "PidMode",
        "IpcMode",
        "UTSMode",
        "UsernsMode",
        "CgroupnsMode",
        "Cgroup",
        "CgroupParent",
        "SecurityOpt",
        "Sysctls",
        "VolumesFrom",
        "VolumeDriver",
        "Links",
        "PortBindings",
        "PublishAllPorts",
        "ExtraHosts",
        "GroupAdd",
        "Runtime",
        "Tmpfs",
        "StorageOpt",
        "AutoRemove",
        "OomKillDisable",
        "Init",
    }
)


def _host_config(value: Any, policy: Policy) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Refused("HostConfig must be an object")
    problems = []
    if value.get("NetworkMode") != policy.network:
        problems.append(f"HostConfig.NetworkMode must be the configured network {policy.network!r}")
    for key, item in value.items():
        if key == "NetworkMode":
            continue
        if key == "ReadonlyRootfs":
            if not isinstance(item, bool | None):
                problems.append("HostConfig.ReadonlyRootfs must be a boolean")
        elif key == "CapDrop":  # dropping capabilities only takes rights away
            if item is not None and not (isinstance(item, list) and all(isinstance(c, str) for c in item)):
                problems.append("HostConfig.CapDrop must be a list of names")
        elif key in HOST_CONFIG_DEFAULT_ONLY:
            if not _is_default(item):
                problems.append(f"HostConfig.{key} is not allowed (only its default)")
        else:
            problems.append(f"HostConfig.{key} is not allowed")
    if problems:
        raise Refused("; ".join(problems))
    return value


def _networking_config(value: Any, policy: Policy) -> Any:
    """Absent, the `docker` SDK's `{<network>: null}`, or endpoints for the configured network only,
    with no settings of their own (addresses, aliases, links)."""
    if value is None or value == {policy.network: None}:
        return value
    if isinstance(value, dict) and set(value) == {"EndpointsConfig"}:
        endpoints = value["EndpointsConfig"]
        if isinstance(endpoints, dict) and set(endpoints) <= {policy.network}:
            if all(_is_default(settings) for settings in endpoints.values()):
                return value
    raise Refused(f"NetworkingConfig may name only the network {policy.network!r}, with no settings")


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Refused("Labels must be an object of strings")
    unknown = sorted(set(value) - MONITOR_LABELS)
    if unknown:
        raise Refused(f"labels not set by the monitor: {unknown}")
    missing = sorted(REQUIRED_LABELS - set(value))
    if missing:
        raise Refused(f"labels the monitor always sets are missing: {missing}")
    if value[ROLE] != CONSUMER_ROLE:
        raise Refused(f"label {ROLE} must be {CONSUMER_ROLE!r}")
    return value


def _env(value: Any) -> Any:
    if value is None:
        return value
    if not isinstance(value, list) or not all(isinstance(e, str) and _ENV_ENTRY.match(e) for e in value):
        raise Refused("Env must be a list of NAME=value strings")
    unknown = sorted({name for name in (e.split("=", 1)[0] for e in value) if not consumer_variable(name)})
    if unknown:
        raise Refused(f"Env names variables no consumer reads: {unknown}")
    return value


def _false_or_null(name: str) -> Callable[[Any, Policy], Any]:
    def check(value: Any, _: Policy) -> Any:
        if value not in (None, False):
            raise Refused(f"{name} must be false")
        return value

    return check


def _default_only(name: str) -> Callable[[Any, Policy], Any]:
    def check(value: Any, _: Policy) -> Any:
        if not _is_default(value):
            raise Refused(f"{name} is not allowed (only its default)")
        return value

    return check


def _image(value: Any, policy: Policy) -> Any:
    if not isinstance(value, str) or value not in policy.images:
        raise Refused(f"image {value!r} is not one of the configured consumer images {sorted(policy.images)}")
    return value


def _stop_signal(value: Any, _: Policy) -> Any:
    if value not in (None, "", "SIGTERM", "15"):
        raise Refused("StopSignal must be SIGTERM")
    return value


def _stop_timeout(value: Any, _: Policy) -> Any:
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 3600):
        raise Refused("StopTimeout must be a number of seconds")
    return value


# The container configuration's fields the gate accepts; any other top-level key is refused.
CREATE_FIELDS: dict[str, Callable[[Any, Policy], Any]] = {
    "Image": _image,
    "Env": lambda value, _: _env(value),
    "Labels": lambda value, _: _labels(value),
    "HostConfig": _host_config,
    "NetworkingConfig": _networking_config,
    "StopSignal": _stop_signal,
    "StopTimeout": _stop_timeout,
    **{
        name: _false_or_null(name)
        for name in ("Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout", "AttachStderr", "NetworkDisabled")
    },
    # The image decides these; the monitor never sets them.
    **{
        name: _default_only(name)
        for name in (
            "Cmd",
            "Entrypoint",
            "User",
            "WorkingDir",
            "Hostname",
            "Domainname",
            "Volumes",
            "Healthcheck",
            "ExposedPorts",
            "Shell",
            "OnBuild",
        )
    },
}


def check_create(body: bytes, policy: Policy) -> bytes:
    """The create body, checked field by field and re-encoded; `Refused` says what is wrong."""
    document = _strict_json(body)
    if not isinstance(document, dict):
        raise Refused("the body must be a JSON object")
    for key in ("Image", "Labels", "HostConfig"):
        if key not in document:
            raise Refused(f"{key} is required")
    problems = []  # every one of them, so the log says all that was wrong
    for key, value in document.items():
        check = CREATE_FIELDS.get(key)
        try:
            if check is None:
                raise Refused(f"field {key!r} is not allowed")
            check(value, policy)
        except Refused as exc:
            problems.append(str(exc))
    if problems:
        raise Refused("; ".join(problems))
    return json.dumps(document, separators=(",", ":")).encode()


# --- routes --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    path: re.Pattern[str]
    query: Mapping[str, QueryCheck] = field(default_factory=dict)
    required_query: tuple[str, ...] = ()
    body: Literal["none", "create"] = "none"
    owned: bool = False  # the path names a container, which must be a consumer
    image: bool = False  # the path names an image, which must be a configured one


def _route(method: str, path: str, **kwargs: Any) -> Route:
    return Route(method, re.compile(f"^{path}$"), **kwargs)


_PING = [_route("GET", "/_ping"), _route("HEAD", "/_ping"), _route("GET", "/version")]
_LIST = _route(
    "GET",
    "/containers/json",
    query={
        "all": _boolean,
        "limit": _integer,
        "size": _boolean,
        "trunc_cmd": _boolean,
        "since": _name,
        "before": _name,
        "filters": _owned_filter,
    },
    required_query=("filters",),
)

ROUTES: dict[Profile, list[Route]] = {
    "monitor": [
        *_PING,
        _LIST,
        _route("GET", r"/images/(?P<image>[A-Za-z0-9][A-Za-z0-9_./:-]{0,255})/json", image=True),
        _route("POST", "/containers/create", query={"name": _consumer_name}, required_query=("name",), body="create"),
        _route("GET", f"/containers/{_CONTAINER}/json", query={"size": _boolean}, owned=True),
        _route("POST", f"/containers/{_CONTAINER}/start", owned=True),
        _route("POST", f"/containers/{_CONTAINER}/stop", query={"t": _integer}, owned=True),
        _route(
            "DELETE", f"/containers/{_CONTAINER}", query={"v": _boolean, "force": _boolean, "link": _false}, owned=True
        ),
    ],
    "discovery": [
        *_PING,
        _LIST,
        _route("GET", "/networks", query={"filters": _any}),
    ],
}


def decide(request: Request, profile: Profile, policy: Policy) -> Verdict:
    """Whether `request` may reach the engine under `profile`, and what exactly to forward."""
    path = _VERSION_PREFIX.sub("", request.path, count=1)
    if not _PATH.fullmatch(path) or "/." in path or "//" in path:
        return refuse(f"path {request.path!r} is not one the gate understands")
    method = request.method.upper()
    for route in ROUTES[profile]:
        matched = route.path.fullmatch(path)
        if matched is None or route.method != method:
            continue
        try:
            query = check_query(request.query, route.query, required=route.required_query)
            if route.body == "create":
                body: bytes | None = check_create(request.body, policy)
            else:
                _empty_body(request.body)
                body = None
        except Refused as exc:
            return refuse(f"{method} {path}: {exc}")
        if route.image and matched.group("image") not in policy.images:
            return refuse(f"{method} {path}: image is not one of the configured consumer images")
        container = matched.group("container") if route.owned else ""
        return Verdict(allowed=True, path=path, query=query, body=body, container=container)
    return refuse(f"{method} {path} is not allowed for the {profile} profile")


def owned(labels: Mapping[str, str] | None) -> bool:
    """A container the gate lets the monitor operate on: one labelled as a consumer."""
    return bool(labels) and labels is not None and labels.get(ROLE) == CONSUMER_ROLE


def with_container_id(path: str, container: str, container_id: str) -> str:
    """The allowed path with the container reference replaced by the engine's full id."""
    prefix = "/containers/"
    rest = path[len(prefix) + len(container) :]
    return f"{prefix}{container_id}{rest}"
