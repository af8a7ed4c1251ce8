"""Three RabbitMQ nodes (Debian's 3.10.8) on this machine, each in a network namespace of its own.

    default namespace                       cartero-rmq<N> (N = 1, 2, 3)
    ─────────────────                       ────────────────────────────
    bridge crt-cluster (no address) ──veth── clu0 10.77.0.1N   Erlang distribution, epmd
    bridge crt-client  10.78.0.1    ──veth── cli0 10.78.0.1N   AMQP :5672, management :15672

Each node is `rabbit@10.77.0.1N` (long names), with its own data, log and configuration under a
temporary directory and the cluster's one Erlang cookie in its own HOME; epmd runs per namespace,
since each has its own loopback. The machine's own node (`rabbit@localhost`, 127.0.0.1:5672 in
the default namespace) is never touched: the nodes here are started with the scripts under
/usr/lib/rabbitmq/bin, not /usr/sbin's wrappers, which would switch to the rabbitmq user, its
HOME (the machine node's cookie) and its startup log, and with an empty env file instead of
/etc/rabbitmq/rabbitmq-env.conf (which pins the distribution to 127.0.0.1).

Failure detection is made fast, as a production cluster would tune it on a LAN: `net_ticktime`
3 s (a node that stops answering is down after 3–4 s), aten polling every 500 ms (quorum queues'
failure detector), `pause_minority` (a node cut off from the other two pauses: it closes its
listeners and serves nobody until it sees a majority again).

A loss is one of two things: `kill` (SIGKILL of the node's beam process) or `cut` (the
default-namespace ends of both its veths down: the node lives on, cut off from its peers and its
clients; `heal` brings them up). `teardown` removes the namespaces, bridges, processes and
directories, and runs first as well, for what a killed earlier run left behind.
Ref: https://www.rabbitmq.com/docs/partitions, https://www.rabbitmq.com/docs/nettick
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

SIZE = 3
CLUSTER_BRIDGE = "crt-cluster"
CLIENT_BRIDGE = "crt-client"
CLIENT_GATEWAY = "10.78.0.1"  # the default namespace's address on the client bridge
SCRIPTS = Path("/usr/lib/rabbitmq/bin")
DIR_PREFIX = "cartero-cluster-"
AUTH = ("guest", "guest")
ADVANCED_CONFIG = "[{kernel, [{net_ticktime, 3}]}, {aten, [{poll_interval, 500}]}].\n"


def run(*command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    return done


def missing_requirements() -> str | None:
    """Why the cluster cannot run here, or None."""
    if os.geteuid() != 0:
        return "root (network namespaces, bridges)"
    if shutil.which("ip") is None:
        return "iproute2's `ip` (make system-test-deps)"
    if not (SCRIPTS / "rabbitmq-server").exists():
        return "Debian's rabbitmq-server"
    return None


@dataclass
class Node:
    index: int
    home: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def namespace(self) -> str:
        return f"cartero-rmq{self.index}"

    @property
    def cluster_ip(self) -> str:
        return f"10.77.0.1{self.index}"

    @property
    def client_ip(self) -> str:
        return f"10.78.0.1{self.index}"

    @property
    def name(self) -> str:
        return f"rabbit@{self.cluster_ip}"

    # The default-namespace ends of the node's two veths (the ends `cut` takes down).
    @property
    def cluster_link(self) -> str:
        return f"crt-clu{self.index}"

    @property
    def client_link(self) -> str:
        return f"crt-cli{self.index}"

    def amqp_url(self, vhost: str = "/") -> str:
        return f"amqp://{AUTH[0]}:{AUTH[1]}@{self.client_ip}:5672/{quote(vhost, safe='')}"

    @property
    def api_url(self) -> str:
        return f"http://{self.client_ip}:15672/api"

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        erlang_ip = self.cluster_ip.replace(".", ",")
        return {
            **base,
            "HOME": str(self.home),
            "RABBITMQ_CONF_ENV_FILE": str(self.home / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_USE_LONGNAME": "true",
            "RABBITMQ_CONFIG_FILE": str(self.home / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.home / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.home / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.home / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.home / "log"),
            "RABBITMQ_PID_FILE": str(self.home / "beam.pid"),
            # Distribution on the cluster bridge only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": f"-kernel inet_dist_use_interface {{{erlang_ip}}}",
        }

    def write_config(self, cookie: str) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "log").mkdir(exist_ok=True)
        (self.home / "rabbitmq-env.conf").write_text("# empty: not /etc/rabbitmq's\n")
        (self.home / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = {self.client_ip}:5672\n"
            f"management.tcp.ip = {self.client_ip}\n"
            "management.tcp.port = 15672\n"
            "loopback_users = none\n"
            "cluster_partition_handling = pause_minority\n"
            "log.file.level = info\n"
            # The management API's figures (queue leaders, connections) a second old, not five.
            "collect_statistics_interval = 1000\n"
        )
        (self.home / "advanced.config").write_text(ADVANCED_CONFIG)
        (self.home / "enabled_plugins").write_text("[rabbitmq_management].\n")
        cookie_file = self.home / ".erlang.cookie"
        cookie_file.write_text(cookie)
        cookie_file.chmod(0o400)

    def in_namespace(self, *command: str) -> list[str]:
        return ["ip", "netns", "exec", self.namespace, *command]

    def start(self) -> None:
        with (self.home / "log" / "stdout.log").open("ab") as out:
            self.process = subprocess.Popen(
                self.in_namespace(str(SCRIPTS / "rabbitmq-server")),
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def ctl(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = self.in_namespace(str(SCRIPTS / "rabbitmqctl"), "-n", self.name, *args)
        done = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.name} exited {done.returncode}: {done.stderr}")
        return done

    def beam_pid(self) -> int | None:
        try:
            return int((self.home / "beam.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL of the node's Erlang VM: no goodbye to its peers or its clients."""
        pid = self.beam_pid()
        assert pid is not None, f"{self.name} has no pid file"
        os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait(30)
        (self.home / "beam.pid").unlink(missing_ok=True)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.api_url}{path}", auth=AUTH, timeout=5, **kwargs)

    def wait_started(self, timeout: float = 120) -> None:
        """Until the node runs as a broker (`await_startup` fails at once while the node has not
        yet registered with epmd, hence the loop)."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.ctl("await_startup", "--timeout", "30", timeout=45, check=False)
            if done.returncode == 0:
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}; see {self.home / 'log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start within {timeout}s: {done.stderr[-800:]}")
            time.sleep(0.5)

    def running(self) -> bool:
        """Whether the node answers as a running broker (a paused one does not)."""
        return self.ctl("await_startup", "--timeout", "1", timeout=15, check=False).returncode == 0

    def serving_amqp(self) -> bool:
        try:
            with socket.create_connection((self.client_ip, 5672), timeout=0.5):
                return True
        except OSError:
            return False


class NetnsCluster:
    def __init__(self, base: Path | None = None) -> None:
        self.base = base or Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        self.nodes = [Node(index, self.base / f"rmq{index}") for index in range(1, SIZE + 1)]

    # Topology

    def up(self) -> NetnsCluster:
        teardown_leftovers(keep=self.base)
        cookie = secrets.token_hex(20)
        for bridge, address in ((CLUSTER_BRIDGE, None), (CLIENT_BRIDGE, f"{CLIENT_GATEWAY}/24")):
            run("ip", "link", "add", bridge, "type", "bridge")
            if address:
                run("ip", "addr", "add", address, "dev", bridge)
            run("ip", "link", "set", bridge, "up")
        for node in self.nodes:
            ns = node.namespace
            run("ip", "netns", "add", ns)
            run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
            for host_end, inner, bridge, address in (
                (node.cluster_link, "clu0", CLUSTER_BRIDGE, node.cluster_ip),
                (node.client_link, "cli0", CLIENT_BRIDGE, node.client_ip),
            ):
                run("ip", "link", "add", host_end, "type", "veth", "peer", "name", inner, "netns", ns)
                run("ip", "link", "set", host_end, "master", bridge, "up")
                run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{address}/24", "dev", inner)
                run("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
            node.write_config(cookie)
        return self

    def start(self) -> NetnsCluster:
        """Every node started, the second and third joined to the first."""
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_started()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
        for node in self.nodes:
            node.wait_started()
        self.wait_members(SIZE)
        return self

    def running_nodes(self, via: Node | None = None) -> list[str]:
        node = via or self.nodes[0]
        found = node.api("GET", "/nodes").raise_for_status().json()
        return sorted(n["name"] for n in found if n.get("running"))

    def wait_members(self, count: int, *, via: Node | None = None, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if len(self.running_nodes(via)) == count:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the cluster did not show {count} running nodes within {timeout}s")
            time.sleep(0.5)

    def node(self, index: int) -> Node:
        return self.nodes[index - 1]

    def amqp_urls(self, vhost: str = "/") -> str:
        """AMQP_URL for the clients: every node, comma-separated, node 1 first."""
        return ",".join(node.amqp_url(vhost) for node in self.nodes)

    def new_vhost(self, prefix: str) -> str:
        """A vhost of its own for one test, guest allowed everything on it."""
        vhost = f"{prefix}-{secrets.token_hex(5)}"
        first = self.nodes[0]
        first.api("PUT", f"/vhosts/{quote(vhost, safe='')}").raise_for_status()
        first.api(
            "PUT",
            f"/permissions/{quote(vhost, safe='')}/{AUTH[0]}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
        return vhost

    def leader(self, vhost: str, queue: str, *, via: Node | None = None) -> str | None:
        """The node holding the quorum queue's leader, as the management API reports it."""
        node = via or next(n for n in self.nodes if n.serving_amqp())
        found = node.api("GET", f"/queues/{quote(vhost, safe='')}/{quote(queue, safe='')}").raise_for_status()
        leader = found.json().get("leader")
        return str(leader) if leader else None

    def make_whole(self) -> None:
        """Every link up and every node running again, whatever the last test left."""
        for node in self.nodes:
            self.set_links(node, up=True)
        for node in self.nodes:
            if node.beam_pid() is None:
                node.start()
        for node in self.nodes:
            node.wait_started()
        self.wait_members(SIZE)

    # Losses

    def set_links(self, node: Node, *, up: bool, which: Sequence[str] = ("cluster", "client")) -> None:
        for kind in which:
            link = node.cluster_link if kind == "cluster" else node.client_link
            run("ip", "link", "set", link, "up" if up else "down")

    def cut(self, node: Node) -> None:
        """A partition: the node lives on, reachable by neither its peers nor its clients."""
        self.set_links(node, up=False)

    def heal(self, node: Node) -> None:
        self.set_links(node, up=True)

    def restart(self, node: Node) -> None:
        """A killed node started again on its own data: it rejoins the cluster."""
        node.start()
        node.wait_started()
        self.wait_members(SIZE)

    # Teardown

    def down(self) -> None:
        for node in self.nodes:
            pid = node.beam_pid()
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
        teardown_leftovers(keep=self.base)
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        shutil.rmtree(self.base, ignore_errors=True)


def teardown_leftovers(keep: Path | None = None) -> None:
    """Every process in the cluster's namespaces (beam, epmd, CLI) killed, the namespaces and
    bridges removed (a namespace takes its veth ends with it), and earlier runs' directories."""
    for index in range(1, SIZE + 1):
        ns = f"cartero-rmq{index}"
        if not Path(f"/run/netns/{ns}").exists():
            continue
        pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        for _ in range(50):
            if not run("ip", "netns", "pids", ns, check=False).stdout.split():
                break
            time.sleep(0.1)
        run("ip", "netns", "del", ns, check=False)
    for link in (CLUSTER_BRIDGE, CLIENT_BRIDGE, *(f"crt-{k}{i}" for k in ("clu", "cli") for i in range(1, SIZE + 1))):
        if Path(f"/sys/class/net/{link}").exists():
            run("ip", "link", "del", link, check=False)
    for stale in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        if stale != keep:
            shutil.rmtree(stale, ignore_errors=True)
