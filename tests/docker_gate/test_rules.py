"""docker_gate/rules.py: the allow-list decides on method, path, query and body alone (no engine)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docker_gate.rules import Policy, Profile, Request, decide, owned, with_container_id
from tests.docker_gate.bodies import IMAGE, LABELS, NETWORK, sdk_create_body

POLICY = Policy(images=frozenset({IMAGE, "cartero/consumer_email:latest"}), network=NETWORK)
OWNED_FILTER = urlencode({"all": "1", "filters": json.dumps({"label": ["cartero.role=consumer"]})})


def verdict(method: str, path: str, query: str = "", body: bytes = b"", profile: Profile = "monitor") -> Any:
    return decide(Request(method, path, query, body), profile, POLICY)


def create(body: bytes) -> Any:
    return verdict("POST", "/v1.41/containers/create", "name=cartero-consumer_sms-0-abc123", body)


def edited(**changes: Any) -> bytes:
    """The monitor's create body with top-level fields changed (None removes one)."""
    document = json.loads(sdk_create_body())
    for key, value in changes.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return json.dumps(document).encode()


def host_config(**fields: Any) -> bytes:
    return edited(HostConfig={"NetworkMode": NETWORK, **fields})


def test_the_monitors_create_body_is_allowed_and_forwarded_as_checked() -> None:
    result = create(sdk_create_body())
    assert result.allowed, result.reason
    assert json.loads(result.body) == json.loads(sdk_create_body())
    assert result.path == "/containers/create" and list(result.query) == [("name", "cartero-consumer_sms-0-abc123")]
    # The other consumer image, and endpoints written the Engine API's own way.
    assert create(sdk_create_body("cartero/consumer_email:latest")).allowed
    assert create(edited(NetworkingConfig={"EndpointsConfig": {NETWORK: {}}})).allowed


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (sdk_create_body(privileged=True), "Privileged"),
        (sdk_create_body(volumes=["/:/host"]), "Binds"),
        (sdk_create_body(mounts=[{"Type": "bind", "Source": "/", "Target": "/host"}]), "Mounts"),
        (sdk_create_body(cap_add=["SYS_ADMIN"]), "CapAdd"),
        (sdk_create_body(devices=["/dev/sda:/dev/sda"]), "Devices"),
        (sdk_create_body(pid_mode="host"), "PidMode"),
        (sdk_create_body(ipc_mode="host"), "IpcMode"),
        (sdk_create_body(userns_mode="host"), "UsernsMode"),
        (sdk_create_body(security_opt=["apparmor=unconfined"]), "SecurityOpt"),
        (sdk_create_body(sysctls={"kernel.shm_rmid_forced": "1"}), "Sysctls"),
        (sdk_create_body(volumes_from=["cartero-postgres-1"]), "VolumesFrom"),
        (sdk_create_body(network="host"), "NetworkMode"),
        (sdk_create_body(network="bridge"), "NetworkMode"),
        (sdk_create_body(ports={"9101/tcp": 9101}), "PortBindings"),
        (sdk_create_body(user="0"), "User"),
        (sdk_create_body(command=["sh", "-c", "cat /etc/shadow"]), "Cmd"),
        (sdk_create_body(entrypoint=["sh"]), "Entrypoint"),
        (host_config(MaskedPaths=[]), "MaskedPaths"),  # empty is not default: it unmasks /proc
        (host_config(Runtime="runc-unsafe"), "Runtime"),
        (host_config(privileged=True), "privileged"),  # the engine matches keys in any case
        (edited(hostconfig={"Privileged": True}), "hostconfig"),
        (edited(NetworkingConfig={"EndpointsConfig": {"bridge": None}}), "NetworkingConfig"),
        (edited(NetworkingConfig={"EndpointsConfig": {NETWORK: {"IPAddress": "10.0.0.5"}}}), "NetworkingConfig"),
        (edited(Tty=True), "Tty"),
    ],
)
def test_anything_that_reaches_the_host_is_refused(body: bytes, named: str) -> None:
    result = create(body)
    assert not result.allowed
    assert named in result.reason, result.reason


@pytest.mark.parametrize("name", ["token_validator", "rabbitmq", "postgres", "cartero-consumer_sms-0-abc123x", ""])
def test_a_name_the_monitor_never_gives_is_refused(name: str) -> None:
    """A container named like a service would answer for it in the network's DNS."""
    refused = verdict("POST", "/v1.41/containers/create", urlencode({"name": name}), sdk_create_body())
    assert not refused.allowed and "name" in refused.reason
    unnamed = verdict("POST", "/v1.41/containers/create", "", sdk_create_body())
    assert not unnamed.allowed


@pytest.mark.parametrize(
    "variable",
    [
        "PYTHONWARNINGS=ignore::antigravity.x::0",
        "BROWSER=sh -c id #%s",
        "LD_PRELOAD=/tmp/x.so",
        "HTTPS_PROXY=x",
        "PATH=/tmp",
        "amqp_url=amqp://elsewhere",
        "SSL_CERT_FILE=/tmp/ca.pem",
    ],
)
def test_an_environment_variable_no_consumer_reads_is_refused(variable: str) -> None:
    body = sdk_create_body(
        environment={
            "AMQP_URL": "amqp://u:p@rabbitmq:5672/cartero",
            variable.split("=", 1)[0]: variable.split("=", 1)[1],
        }
    )
    refused = create(body)
    assert not refused.allowed and variable.split("=", 1)[0] in refused.reason


def test_the_consumers_own_variables_are_allowed() -> None:
    environment = {
        "AMQP_URL": "amqp://u:p@rabbitmq:5672/cartero",
        "AMQP_CA_FILE": "/etc/ca.pem",
        "DATABASE_URL": "postgresql+psycopg2://consumer_sms:p@postgres:5432/consumer_sms",
        "CONSUMER_EMAIL_METRICS_PORT": "9102",
        "EMAIL_PROVIDER": "smtp",
        "SMTP_HOST": "mailpit",
        "SMS_GATEWAY_URL": "http://gateway",
        "METRICS_HOST": "0.0.0.0",
        "TIMEZONE": "Europe/Madrid",
        "LOG_LEVEL": "INFO",
        "CARTERO_QUEUE_TYPE": "quorum",
    }
    assert create(sdk_create_body(environment=environment)).allowed


def test_an_image_not_on_the_list_is_refused() -> None:
    result = create(sdk_create_body("docker.io/library/debian:12"))
    assert not result.allowed and "debian" in result.reason
    assert not create(edited(Image=None)).allowed
    assert "image" in create(edited(Image=[IMAGE])).reason  # not a string: refused, not a crash


def test_the_labels_must_be_the_monitors() -> None:
    assert "cartero.role" in create(sdk_create_body(labels={**LABELS, "cartero.role": "admin"})).reason
    assert "traefik.enable" in create(sdk_create_body(labels={**LABELS, "traefik.enable": "true"})).reason
    missing = {key: value for key, value in LABELS.items() if key != "cartero.monitor"}
    assert "cartero.monitor" in create(sdk_create_body(labels=missing)).reason


def test_a_key_given_twice_is_refused_in_any_spelling() -> None:
    # Go's decoder would merge the first HostConfig into the second; Python keeps only the last.
    twice = sdk_create_body().replace(b'"HostConfig"', b'"HostConfig": {"Privileged": true}, "HostConfig"')
    assert "twice" in create(twice).reason
    spelled = sdk_create_body().replace(b'"Labels"', b'"hostConfig": {"Privileged": true}, "Labels"')
    assert not create(spelled).allowed
    assert "not JSON" in create(b"{not json").reason
    assert not create(b"[]").allowed


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("PUT", "/v1.41/containers/abc/archive", "path=/tmp"),
        ("POST", "/v1.41/containers/abc/exec", ""),
        ("POST", "/v1.41/containers/abc/attach", "stream=1"),
        ("POST", "/v1.41/containers/abc/update", ""),
        ("POST", "/v1.41/build", "t=x"),
        ("POST", "/v1.41/images/create", "fromImage=alpine"),
        ("POST", "/v1.41/volumes/create", ""),
        ("POST", "/v1.41/networks/create", ""),
        ("POST", "/v1.41/networks/cartero/connect", ""),
        ("GET", "/v1.41/containers/abc/archive", "path=/etc"),
        ("GET", "/v1.41/containers/abc/export", ""),
        ("GET", "/v1.41/containers/abc/logs", "stdout=1"),
        ("GET", "/v1.41/images/docker.io/library/debian:12/json", ""),
        ("GET", "/v1.41/info", ""),
        ("POST", "/v1.41/containers/abc/start/../../build", ""),
        ("POST", "/v1.41/containers/%61bc/start", ""),
        ("GET", "/v1.41/containers/json", ""),  # unfiltered: every container's summary
        ("GET", "/v1.41/containers/json", urlencode({"filters": json.dumps({"label": ["a=b"]})})),
        ("DELETE", "/v1.41/containers/abc", "link=1"),
        ("POST", "/v1.41/containers/abc/stop", "t=1&signal=SIGKILL"),
        ("POST", "/v1.41/containers/create", "name=a&name=b"),
    ],
)
def test_the_monitor_profile_refuses_what_it_does_not_list(method: str, path: str, query: str) -> None:
    result = verdict(method, path, query, body=sdk_create_body() if "create" in path else b"")
    assert not result.allowed, (method, path, query)


def test_the_monitor_profile_allows_its_calls_on_consumer_containers_only() -> None:
    for method, path, query in [
        ("GET", "/containers/cartero-consumer_sms-0-abc123/json", ""),
        ("POST", "/v1.41/containers/4f3c2b1a/start", ""),
        ("POST", "/v1.41/containers/4f3c2b1a/stop", "t=40"),
        ("DELETE", "/v1.41/containers/4f3c2b1a", "v=True&link=False&force=False"),
    ]:
        result = verdict(method, path, query)
        assert result.allowed, result.reason
        assert result.container, "a container operation must be checked against the engine's labels"
    assert owned({"cartero.role": "consumer"})
    assert not owned({"cartero.role": "admin"}) and not owned({}) and not owned(None)
    assert with_container_id("/containers/short/stop", "short", "f" * 64) == f"/containers/{'f' * 64}/stop"


def test_the_monitor_profile_allows_listing_consumers_ping_and_its_images() -> None:
    assert verdict("GET", "/v1.41/containers/json", OWNED_FILTER).allowed
    go_form = urlencode({"filters": json.dumps({"label": {"cartero.role=consumer": True}})})
    assert verdict("GET", "/containers/json", go_form).allowed
    assert verdict("GET", f"/v1.41/images/{IMAGE}/json").allowed
    for method, path in [("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/version"), ("GET", "/v1.43/version")]:
        assert verdict(method, path).allowed, path
    assert not verdict("GET", "/_ping", body=b'{"x": 1}').allowed


def test_the_discovery_profile_lists_and_inspects_nothing() -> None:
    assert verdict("GET", "/v1.41/containers/json", OWNED_FILTER, profile="discovery").allowed
    assert verdict("GET", "/v1.41/networks", profile="discovery").allowed
    assert verdict("HEAD", "/_ping", profile="discovery").allowed
    for method, path in [
        ("GET", "/v1.41/containers/abc/json"),  # the environment of a container: its secrets
        ("GET", "/v1.41/networks/cartero"),
        ("POST", "/v1.41/containers/create"),
        ("POST", "/v1.41/containers/abc/stop"),
        ("GET", f"/v1.41/images/{IMAGE}/json"),
    ]:
        result = verdict(method, path, profile="discovery")
        assert not result.allowed and "discovery" in result.reason, path


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["Image", "Labels", "HostConfig", "NetworkingConfig", "Env", "StopSignal", "Cmd"])


@settings(max_examples=150, deadline=None)
@given(changes=st.dictionaries(FIELDS, JSON, max_size=4))
def test_any_create_body_is_judged_never_crashes(changes: dict[str, Any]) -> None:
    """Whatever the values, the rules answer (a refusal with a reason, or the checked body)."""
    document = {**json.loads(sdk_create_body()), **changes}
    result = create(json.dumps(document).encode())
    assert result.allowed or result.reason
    if result.allowed:
        assert json.loads(result.body)["Image"] in POLICY.images
        assert json.loads(result.body)["HostConfig"]["NetworkMode"] == NETWORK
