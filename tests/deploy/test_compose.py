"""docker-compose.yml, checked by the Compose v2 binary and against what the stack promises."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import URL, make_url

from tests.deploy.compose_file import (
    GOOD_SECRETS,
    interpolated_variables,
    jobs,
    resolved_config,
    run_compose,
    unescape,
    write_env,
)
from tests.deploy.engine import services_with_images
from tests.support import ROOT

LONG_RUNNING_RESTARTS = {"unless-stopped", "always"}
# The only services that mount the Docker socket (docker_gate/, one per profile).
GATES = ("docker-gate-monitor", "docker-gate-sd")
PUBLISHED = {  # service: (published, container port)
    "rabbitmq": ("9890", 15672),
    "grafana": ("3000", 3000),
    "prometheus": ("9090", 9090),
    "sender": ("8000", 8000),
    "token_panel": ("8002", 8002),
}


@pytest.fixture(scope="module")
def env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_env(tmp_path_factory.mktemp("compose") / ".env", GOOD_SECRETS)


@pytest.fixture(scope="module")
def config(env_file: Path) -> dict[str, Any]:
    return resolved_config(env_file)


def test_the_compose_binary_accepts_the_file(env_file: Path) -> None:
    result = run_compose(env_file, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_a_missing_secret_stops_compose_with_a_clear_message(tmp_path: Path) -> None:
    values = {k: v for k, v in GOOD_SECRETS.items() if k != "VALIDATOR_ADMIN_KEY"}
    result = run_compose(write_env(tmp_path / ".env", values), "config", "-q")
    assert result.returncode != 0
    assert "set VALIDATOR_ADMIN_KEY in .env" in result.stderr


def run_preflight(config: dict[str, Any], overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The preflight service's script, run by a POSIX shell with the environment compose gives it."""
    service = config["services"]["preflight"]
    assert service["entrypoint"][:2] == ["/bin/sh", "-c"]
    env = {"PATH": "/usr/bin:/bin", **service["environment"], **overrides}
    script = unescape(service["entrypoint"][2])
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=10)


def test_preflight_accepts_real_secrets(config: dict[str, Any]) -> None:
    result = run_preflight(config, {})
    assert result.returncode == 0, result.stderr


def test_preflight_refuses_the_example_env_with_a_message(tmp_path: Path) -> None:
    example = resolved_config(ROOT / ".env.example")  # every secret is `changethis` there
    result = run_preflight(example, {})
    assert result.returncode == 1
    assert "Cartero refuses to start" in result.stderr
    for name in GOOD_SECRETS:
        assert f"{name} still has the example value 'changethis'" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("GRAFANA_ADMIN_PASSWORD", "short", "shorter than 32 characters"),
        ("POSTGRES_PASSWORD", "has/slash:and@at0123", "goes into a URL"),
        ("POSTGRES_CONSUMER_SMS_PASSWORD", "has/slash:and@at0123-0123456789abcdef", "goes into a URL"),
        ("POSTGRES_TOKEN_VALIDATOR_OWNER_PASSWORD", "short", "shorter than 32 characters"),
        ("RABBITMQ_SENDER_PASSWORD", "my-changethis-secret", "example value"),
        ("RABBITMQ_MONITOR_PASSWORD", "has/slash:and@at0123-0123456789abcdef", "goes into a URL"),
        ("RABBITMQ_PHP_PASSWORD", "short", "shorter than 32 characters"),
    ],
)
def test_preflight_refuses_weak_secrets(config: dict[str, Any], name: str, value: str, complaint: str) -> None:
    result = run_preflight(config, {name: value})
    assert result.returncode == 1
    assert name in result.stderr and complaint in result.stderr


def test_every_service_waits_for_preflight(config: dict[str, Any]) -> None:
    services = config["services"]

    def reaches_preflight(name: str, seen: frozenset[str] = frozenset()) -> bool:
        depends = services[name].get("depends_on") or {}
        return "preflight" in depends or any(reaches_preflight(d, seen | {name}) for d in depends if d not in seen)

    # The Docker API gates, the mail catcher and Prometheus hold no secret from .env.
    free = {"preflight", *GATES, "mailpit", "prometheus"}
    late = [name for name in services if name not in free and not reaches_preflight(name)]
    assert not late, f"services that may start before the secrets are checked: {late}"


def test_every_long_running_service_has_a_healthcheck(config: dict[str, Any]) -> None:
    one_shot = jobs(config)
    missing = []
    for name, service in config["services"].items():
        if name in one_shot:
            continue
        check = service.get("healthcheck") or {}
        if check.get("disable") or not check.get("test") or check["test"][0] == "NONE":
            missing.append(name)
    assert not missing, f"services without a healthcheck: {missing}"


def test_one_shot_jobs_do_not_restart_and_services_do(config: dict[str, Any]) -> None:
    one_shot = jobs(config)
    assert {"preflight", "rabbitmq-setup", "token_validator-migrate", "consumer_logs-migrate"} <= one_shot
    for name, service in config["services"].items():
        if name in one_shot:
            assert service.get("restart") == "no", name
        elif service.get("deploy", {}).get("replicas") != 0:
            assert service.get("restart") in LONG_RUNNING_RESTARTS, name


def test_dependencies_wait_for_health_or_completion(config: dict[str, Any]) -> None:
    one_shot = jobs(config)
    for name, service in config["services"].items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in config["services"], f"{name} depends on unknown {dependency}"
            wanted = "service_completed_successfully" if dependency in one_shot else "service_healthy"
            assert spec["condition"] == wanted, f"{name} → {dependency}: {spec['condition']}"


DATABASE_SERVICES = ("token_validator", "consumer_logs", "consumer_sms", "consumer_email")


def database_url(service: dict[str, Any]) -> URL:
    return make_url(service["environment"]["DATABASE_URL"])


def test_migrations_run_before_the_validator_and_the_message_log(config: dict[str, Any]) -> None:
    services = config["services"]
    for service in ("token_validator", "consumer_logs"):
        migrate = f"{service}-migrate"
        assert services[service]["depends_on"][migrate]["condition"] == "service_completed_successfully"
        assert services[migrate]["command"] == ["migrate"]
        assert services[migrate]["image"] == services[service]["image"]
        assert database_url(services[migrate]).database == database_url(services[service]).database


def test_migrations_run_as_the_owner_and_services_as_their_runtime_role(config: dict[str, Any]) -> None:
    services = config["services"]
    for name in DATABASE_SERVICES:
        migrate, service = services[f"{name}-migrate"], services[name]
        assert migrate["depends_on"]["postgres-setup"]["condition"] == "service_completed_successfully"
        owner, runtime = database_url(migrate), database_url(service)
        assert (owner.username, owner.database) == (f"{name}_owner", name)
        assert (runtime.username, runtime.database) == (name, name)
        assert migrate["environment"]["DATABASE_RUNTIME_ROLE"] == runtime.username
        assert owner.password == GOOD_SECRETS[f"POSTGRES_{name.upper()}_OWNER_PASSWORD"]
        assert runtime.password == GOOD_SECRETS[f"POSTGRES_{name.upper()}_PASSWORD"]
        assert "DATABASE_RUNTIME_ROLE" not in service["environment"]


def test_each_stateful_service_has_its_own_database_set_up_with_its_roles(config: dict[str, Any]) -> None:
    setup = config["services"]["postgres-setup"]
    assert setup["entrypoint"] == ["python", "-m", "cartero_common", "postgres-setup"]
    assert setup["environment"]["POSTGRES_DATABASES"].split() == list(DATABASE_SERVICES)
    for name in DATABASE_SERVICES:
        for role in ("_OWNER", ""):
            variable = f"POSTGRES_{name.upper()}{role}_PASSWORD"
            assert setup["environment"][variable] == GOOD_SECRETS[variable]
    for name, service in config["services"].items():
        url = (service.get("environment") or {}).get("DATABASE_URL")
        if url:
            database = make_url(url).database
            assert database == name.removesuffix("-migrate"), f"{name} uses database {database}"
            assert database in DATABASE_SERVICES


def test_no_service_connects_as_the_postgres_superuser(config: dict[str, Any]) -> None:
    """Only PostgreSQL itself and the setup job hold the superuser's password (preflight checks
    it and connects nowhere); every URL any other container gets names a role of its own."""
    superuser, password = "cartero", GOOD_SECRETS["POSTGRES_PASSWORD"]
    holders = sorted(
        name
        for name, service in config["services"].items()
        if password in json.dumps(service.get("environment") or {}) + json.dumps(service.get("command") or [])
    )
    assert holders == ["postgres", "postgres-setup", "preflight"]
    urls = [
        (name, value)
        for name, service in config["services"].items()
        for value in _strings(service.get("environment") or {})
        if value.startswith("postgresql")
    ]
    assert len(urls) >= 2 * len(DATABASE_SERVICES) + 2  # jobs, services, the monitor's consumers
    for name, value in urls:
        user = make_url(value).username
        if name != "postgres-setup":
            assert user != superuser and user in {f"{d}{s}" for d in DATABASE_SERVICES for s in ("", "_owner")}, name


def _strings(environment: dict[str, Any]) -> list[str]:
    """Every value, and the values of JSON objects inside values (the monitor's consumer env)."""
    found = []
    for value in environment.values():
        text = str(value)
        found.append(text)
        if text.startswith("{"):
            found += [str(v) for v in json.loads(text).values()]
    return found


def socket_mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        volume
        for volume in service.get("volumes") or []
        if "docker.sock" in str(volume.get("source", "")) + str(volume.get("target", ""))
    ]


def test_no_service_but_the_gates_mounts_the_docker_socket_and_they_read_only(config: dict[str, Any]) -> None:
    mounting = sorted(name for name, service in config["services"].items() if socket_mounts(service))
    assert mounting == sorted(GATES)
    for name in GATES:
        for mount in socket_mounts(config["services"][name]):
            assert mount["type"] == "bind" and mount.get("read_only") is True, (name, mount)


def test_the_gates_run_unprivileged_with_a_read_only_root(config: dict[str, Any]) -> None:
    for name in GATES:
        gate = config["services"][name]
        assert gate["image"] == "cartero/docker_gate:latest"
        assert gate.get("read_only") is True, name
        assert gate.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in gate.get("security_opt", []), name
        assert not gate.get("privileged") and not gate.get("cap_add"), name
        assert "user" not in gate, f"{name}: the image's unprivileged user (10001), not {gate.get('user')}"
        # The socket's group only, as a supplementary group of that user (DOCKER_GID's default here).
        assert [str(group) for group in gate.get("group_add", [])] == ["999"], name
        assert not gate.get("ports"), f"{name} publishes a port"
    assert config["services"]["docker-gate-monitor"]["build"]["target"] == "docker_gate"


def test_the_monitor_reaches_docker_only_through_its_gate(config: dict[str, Any]) -> None:
    services = config["services"]
    monitor = services["monitor"]
    gate_name = monitor["environment"]["DOCKER_HOST"].removeprefix("tcp://").split(":")[0]
    assert gate_name == "docker-gate-monitor"
    gate = services[gate_name]
    for network in gate["networks"]:
        assert config["networks"][network].get("internal") is True, f"{gate_name} on non-internal {network}"
    assert set(gate["networks"]) <= set(monitor["networks"])
    environment = gate["environment"]
    assert environment["DOCKER_GATE_PROFILE"] == "monitor"
    # The images and network it allows are the ones the monitor uses, and nothing more.
    consumers = {services[name]["image"] for name in ("consumer_sms", "consumer_email")}
    assert set(environment["DOCKER_GATE_IMAGES"].split(",")) == consumers
    assert environment["DOCKER_GATE_NETWORK"] == monitor["environment"]["MONITOR_DOCKER_NETWORK"]
    # Every variable the monitor hands its consumers is one the gate lets a container have.
    from docker_gate.rules import consumer_variable

    for variable in ("MONITOR_SMS_CONSUMER_ENV", "MONITOR_EMAIL_CONSUMER_ENV"):
        refused = [name for name in json.loads(monitor["environment"][variable]) if not consumer_variable(name)]
        assert not refused, f"{variable}: the gate would refuse {refused}"


def test_prometheus_service_discovery_uses_the_list_only_gate(config: dict[str, Any]) -> None:
    scrape = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    hosts = [sd["host"] for job in scrape for sd in job.get("docker_sd_configs", [])]
    assert hosts, "no docker_sd_configs in prometheus.yml"
    for host in hosts:
        gate = config["services"][host.removeprefix("tcp://").split(":")[0]]
        assert gate["environment"]["DOCKER_GATE_PROFILE"] == "discovery"
        assert set(gate["networks"]) <= set(config["services"]["prometheus"]["networks"])
        for network in gate["networks"]:
            assert config["networks"][network].get("internal") is True


def test_no_service_is_privileged_or_shares_the_hosts_namespaces(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        assert not service.get("privileged"), name
        assert not service.get("cap_add"), f"{name} adds capabilities {service.get('cap_add')}"
        assert not service.get("devices"), name
        for mode in ("network_mode", "pid", "ipc", "userns_mode", "uts"):
            assert service.get(mode) != "host", f"{name}: {mode}: host"
        assert str(service.get("user", "")).split(":")[0] not in ("0", "root"), f"{name} runs as root"
        assert not [o for o in service.get("security_opt", []) if "unconfined" in o], name


def test_bind_mounts_are_read_only_files_of_the_repository_or_the_gates_socket(config: dict[str, Any]) -> None:
    for name, service in config["services"].items():
        for volume in service.get("volumes") or []:
            if volume["type"] != "bind":
                continue
            source = Path(volume["source"])
            assert volume.get("read_only") is True, f"{name} binds {source} writable"
            if name in GATES and str(source) == "/var/run/docker.sock":
                continue
            assert source.is_relative_to(ROOT), f"{name} binds {source}, outside the repository"


def test_published_ports(config: dict[str, Any]) -> None:
    for service, (published, target) in PUBLISHED.items():
        ports = {(p["published"], p["target"]) for p in config["services"][service].get("ports", [])}
        assert (published, target) in ports, f"{service}: {ports}"
    rabbit_targets = {p["target"] for p in config["services"]["rabbitmq"]["ports"]}
    assert 15692 not in rabbit_targets  # metrics stay on the internal network, for Prometheus


def test_compose_runs_no_consumer_replicas_and_the_monitor_uses_its_network(config: dict[str, Any]) -> None:
    services = config["services"]
    for consumer in ("consumer_sms", "consumer_email"):
        assert services[consumer]["deploy"]["replicas"] == 0
        assert services[consumer]["build"]["target"] == consumer
    network = services["monitor"]["environment"]["MONITOR_DOCKER_NETWORK"]
    assert config["networks"]["cartero"]["name"] == network
    assert "cartero" in services["monitor"]["networks"]


def test_images_used_by_jobs_are_built_by_the_stack(config: dict[str, Any]) -> None:
    built = {s["image"] for s in config["services"].values() if "build" in s}
    for name, service in config["services"].items():
        if service["image"].startswith("cartero/"):
            assert service["image"] in built, f"{name} uses {service['image']}, which no service builds"


def test_every_image_target_is_built_by_compose_from_the_one_dockerfile(config: dict[str, Any]) -> None:
    builds = [s["build"] for s in config["services"].values() if "build" in s]
    assert all(build.get("dockerfile", "Dockerfile") == "Dockerfile" for build in builds)
    assert not list(ROOT.glob("*/Dockerfile")), "one Dockerfile, at the root"
    targets = {build["target"] for build in builds}
    for target in services_with_images():
        assert target in targets, f"the Dockerfile's target {target} is not built by docker-compose.yml"


def test_state_lives_in_named_volumes(config: dict[str, Any]) -> None:
    expected = {
        "postgres": "/var/lib/postgresql/data",
        "rabbitmq": "/var/lib/rabbitmq",
        "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    for service, target in expected.items():
        volumes = {v["target"]: v for v in config["services"][service]["volumes"]}
        assert volumes[target]["type"] == "volume", f"{service}: {volumes[target]}"


def test_env_example_lists_every_variable_the_stack_reads() -> None:
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    }
    missing = sorted(interpolated_variables() - example)
    assert not missing, f"missing from .env.example: {missing}"


def test_the_build_context_leaves_out_secrets_state_and_virtualenvs() -> None:
    from docker.utils.build import exclude_paths

    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    sent = exclude_paths(str(ROOT), patterns)
    for path in sent:
        top = path.split("/", 1)[0]
        assert top not in {".git", ".venv", "var", "tests", ".env"}, path
        assert "__pycache__" not in path, path
    assert {"pyproject.toml", "cartero_common/__init__.py", "sender/__main__.py"} <= set(sent)


def test_the_monitor_hands_each_consumer_its_own_database(config: dict[str, Any]) -> None:
    environment = config["services"]["monitor"]["environment"]
    for kind, consumer in (("SMS", "consumer_sms"), ("EMAIL", "consumer_email")):
        handed = json.loads(environment[f"MONITOR_{kind}_CONSUMER_ENV"])
        assert handed["DATABASE_URL"] == config["services"][consumer]["environment"]["DATABASE_URL"]
        assert make_url(handed["DATABASE_URL"]).username == consumer  # its runtime role


def test_the_sender_listens_on_this_host_unless_sender_bind_says_otherwise(
    config: dict[str, Any], tmp_path: Path
) -> None:
    (sender,) = config["services"]["sender"]["ports"]
    assert (sender["host_ip"], sender["published"]) == ("127.0.0.1", "8000")
    opened = resolved_config(write_env(tmp_path / ".env", {**GOOD_SECRETS, "SENDER_BIND": "0.0.0.0"}))
    assert opened["services"]["sender"]["ports"][0]["host_ip"] == "0.0.0.0"


def test_the_panel_and_the_sender_are_told_their_reverse_proxies(tmp_path: Path) -> None:
    told = resolved_config(write_env(tmp_path / ".env", {**GOOD_SECRETS, "TRUSTED_PROXIES": "172.18.0.1"}))
    for service in ("sender", "token_panel"):
        assert told["services"][service]["environment"]["TRUSTED_PROXIES"] == "172.18.0.1", service
    own = resolved_config(write_env(tmp_path / ".env", {**GOOD_SECRETS, "PANEL_TRUSTED_PROXIES": "10.0.0.5"}))
    assert own["services"]["token_panel"]["environment"]["TRUSTED_PROXIES"] == "10.0.0.5"


def test_every_reader_of_the_message_log_holds_its_read_key(config: dict[str, Any]) -> None:
    key = GOOD_SECRETS["CONSUMER_LOGS_READ_KEY"]
    for service in ("consumer_logs", "token_panel", "token_validator"):
        assert config["services"][service]["environment"]["CONSUMER_LOGS_READ_KEY"] == key, service
    # Compose keeps no message's text unless the operator asks for it.
    assert config["services"]["consumer_logs"]["environment"]["CONSUMER_LOGS_STORE_CONTENT"] == "false"
    assert "CONSUMER_LOGS_READ_KEY" in config["services"]["preflight"]["environment"]["SECRETS"].split()


AMQP_ROLES = {  # service: the RabbitMQ role it connects as
    "sender": "sender",
    "consumer_logs": "consumer_logs",
    "consumer_sms": "consumer_sms",
    "consumer_email": "consumer_email",
    "consumer_webhooks": "consumer_webhooks",
    "dead_letters": "dead_letters",
    "monitor": "monitor",
}


def amqp_user(url: str) -> str:
    return url.removeprefix("amqp://").split(":", 1)[0]


def test_each_service_connects_as_its_own_rabbitmq_user(config: dict[str, Any]) -> None:
    services = config["services"]
    for name, service in services.items():
        url = (service.get("environment") or {}).get("AMQP_URL")
        if name in AMQP_ROLES:
            assert url is not None and amqp_user(url) == AMQP_ROLES[name], f"{name}: {url}"
            password = GOOD_SECRETS[f"RABBITMQ_{AMQP_ROLES[name].upper()}_PASSWORD"]
            assert f":{password}@rabbitmq:5672/" in url, name
        else:
            assert url is None, f"{name} holds an AMQP credential it does not use"
    monitor = services["monitor"]["environment"]
    # The consumers the monitor starts get their own users, not the monitor's.
    for variable, role in (
        ("MONITOR_SMS_CONSUMER_ENV", "consumer_sms"),
        ("MONITOR_EMAIL_CONSUMER_ENV", "consumer_email"),
    ):
        consumer_env = json.loads(monitor[variable])
        assert consumer_env["AMQP_URL"] == services[role]["environment"]["AMQP_URL"]


def test_every_amqp_client_and_the_setup_share_one_queue_type(tmp_path: Path) -> None:
    """A queue's type is fixed when it is made; a client declaring another is refused (406)."""
    services = resolved_config(write_env(tmp_path / ".env", {**GOOD_SECRETS, "CARTERO_QUEUE_TYPE": "quorum"}))[
        "services"
    ]
    for name in (*AMQP_ROLES, "rabbitmq-setup"):
        assert services[name]["environment"]["CARTERO_QUEUE_TYPE"] == "quorum", name
    assert services["rabbitmq-setup"]["environment"]["CARTERO_PHP_DECLARES"] == "true"


def test_the_queue_type_is_classic_by_default(config: dict[str, Any]) -> None:
    for name in (*AMQP_ROLES, "rabbitmq-setup"):
        assert config["services"][name]["environment"]["CARTERO_QUEUE_TYPE"] == "classic", name


def test_rabbitmq_setup_gets_every_role_and_preflight_checks_every_role_password(config: dict[str, Any]) -> None:
    from cartero_common.amqp.setup import load_definitions

    setup = config["services"]["rabbitmq-setup"]["environment"]
    preflight = config["services"]["preflight"]["environment"]
    checked = preflight["SECRETS"].split()
    in_urls = preflight["URL_SECRETS"].split()
    for role in load_definitions(ROOT / "rabbitmq" / "definitions.json").roles:
        variable = f"RABBITMQ_{role.role.upper()}_PASSWORD"
        assert setup[variable] == GOOD_SECRETS[variable]
        assert setup[f"RABBITMQ_{role.role.upper()}_USER"] == role.role
        assert variable in checked
        assert (variable in in_urls) == (role.role in AMQP_ROLES.values()), variable


def test_plain_amqp_is_published_to_this_host_only_by_default(config: dict[str, Any]) -> None:
    ports = {p["target"]: p for p in config["services"]["rabbitmq"]["ports"]}
    assert ports[5672]["host_ip"] == "127.0.0.1"
    assert 5671 not in ports  # AMQPS only with the operator's certificates (docker-compose.tls.yml)


def test_the_tls_file_adds_amqps_with_the_operators_certificates(env_file: Path) -> None:
    tls_file = ROOT / "docker-compose.tls.yml"
    combined = resolved_config(env_file, files=(ROOT / "docker-compose.yml", tls_file))
    rabbitmq = combined["services"]["rabbitmq"]
    ports = {p["target"]: p for p in rabbitmq["ports"]}
    assert ports[5671]["published"] == "5671"
    assert ports[5672]["host_ip"] == "127.0.0.1"
    mounts = {v["target"]: v for v in rabbitmq["volumes"]}
    assert mounts["/etc/rabbitmq/conf.d/30-cartero-tls.conf"]["source"] == str(ROOT / "rabbitmq" / "tls.conf")
    certificates = mounts["/etc/rabbitmq/tls"]
    assert certificates["read_only"] is True and certificates["source"] == str(ROOT / "rabbitmq" / "tls")
    # Every file tls.conf names is inside the certificates' mount.
    conf = (ROOT / "rabbitmq" / "tls.conf").read_text()
    named = [
        line.split("=", 1)[1].strip()
        for line in conf.splitlines()
        if line.startswith("ssl_options.") and "file" in line
    ]
    assert len(named) == 3 and all(path.startswith("/etc/rabbitmq/tls/") for path in named)
