"""A node lost under load loses nothing.

Three nodes, quorum queues, a sender taking ~60 SMS requests a second and consumer_sms
delivering them to a recording gateway; every client starts on node 1, which also holds every
queue's leader. Then node 1 is lost: SIGKILLed in one run, cut off from its peers and its
clients for 20 s (then healed) in the other. In each run every message the sender accepted
(202) reaches the gateway exactly once (redeliveries are absorbed by the dedupe ledger), the
sender accepts again within 5 s of the loss and the consumer delivers again within 5 s.

A killed node's kernel closes its sockets, so the clients hear of the loss at once. A node cut
off sends nothing: the clients notice by TCP_USER_TIMEOUT (cartero_common/amqp/silent_nodes.py),
which ends a connection whose sent data stays unacknowledged for 2 s.

The figures go to test-artifacts/cluster-<run>.json and are printed (docs/scaling-out.md).
"""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.deployment import HEARTBEAT_SECONDS, Answer, Load, Services, connections_by_node, services, topology
from tests.cluster.netns_cluster import NetnsCluster, Node
from tests.support import ROOT, wait_until

RATE = 60  # requests a second, for the whole run
BEFORE_LOSS_S = 8
AFTER_KILL_S = 12
CUT_FOR_S = 20
AFTER_HEAL_S = 8
RESUME_WITHIN_S = 5.0
ARTIFACTS = ROOT / "test-artifacts"


def first_after(times: list[float], instant: float) -> float | None:
    later = [t for t in times if t >= instant]
    return min(later) - instant if later else None


def longest_gap(times: list[float], start: float, end: float) -> float:
    points = sorted([start, *(t for t in times if start <= t <= end), end])
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def wait_delivered(running: Services, accepted: set[str]) -> None:
    def all_there() -> bool:
        return accepted <= {r["body"]["id"] for r in running.gateway.requests}

    try:
        wait_until(all_there, timeout=60, interval=0.5, what="every accepted message at the gateway")
    except AssertionError:
        pass  # counted as lost below, with the figures printed
    time.sleep(3)  # a redelivery that would reach the gateway twice comes within this


def figures(
    run: str, running: Services, answers: list[Answer], lost_at: float, extra: dict[str, Any]
) -> dict[str, Any]:
    accepted = [a for a in answers if a.status == 202]
    accepted_ids = {a.message_id for a in accepted if a.message_id}
    calls = Counter(r["body"]["id"] for r in running.gateway.requests)
    after_loss = [a for a in accepted if a.sent >= lost_at]
    accepted_after = {a.message_id for a in after_loss}
    consumed_after = [r["at"] for r in running.gateway.requests if r["body"]["id"] in accepted_after]
    consumer_log = log_records(running.consumer_log)
    absorbed = sum(1 for record in consumer_log if record["msg"] == "already delivered before; not sent again")
    # The services log UTC wall times.
    lost_at_utc = datetime.now(UTC) - timedelta(seconds=time.monotonic() - lost_at)
    consuming = [
        (datetime.fromisoformat(r["time"]) - lost_at_utc).total_seconds()
        for r in consumer_log
        if r["msg"] == "consuming"
    ]
    end = max(a.answered for a in answers)
    result = {
        "run": run,
        "lost_at_utc": lost_at_utc.isoformat(timespec="milliseconds"),
        "rate_per_s": RATE,
        "heartbeat_s": HEARTBEAT_SECONDS,
        "requests": len(answers),
        "answers": dict(sorted(Counter(" ".join(filter(None, (str(a.status), a.code))) for a in answers).items())),
        "accepted": len(accepted_ids),
        "lost": len(accepted_ids - set(calls)),
        "provider_duplicates": sum(count - 1 for message_id, count in calls.items() if message_id in accepted_ids),
        "delivered_without_202": len(set(calls) - accepted_ids),
        "redeliveries_absorbed_by_dedupe": absorbed,
        # From the loss to the first 202 of a request sent after it.
        "sender_resumed_s": round(min(a.answered for a in after_loss) - lost_at, 2) if after_loss else None,
        "sender_longest_gap_without_202_s": round(longest_gap([a.answered for a in accepted], lost_at - 1, end), 2),
        # From the loss to the gateway's first call for a message accepted after it (a call for
        # one the consumer held before the loss would prove nothing), which therefore went all
        # the way through the surviving nodes; and to the consumer's own "consuming" on a node.
        "consumer_resumed_s": _rounded(first_after(consumed_after, lost_at)),
        "consumer_consuming_again_s": _rounded(first_after(consuming, 0.0)),
        **extra,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"cluster-{run}.json").write_text(json.dumps(result, indent=2) + "\n")
    kept = ARTIFACTS / f"cluster-{run}-logs"  # the services' logs, to read the figures against
    shutil.rmtree(kept, ignore_errors=True)
    kept.mkdir()
    for log in running.logs.glob("*.log"):
        shutil.copy(log, kept / log.name)
    print(f"\n[cluster] {run}: {json.dumps(result)}")
    return result


def log_records(path: Path) -> list[dict[str, Any]]:
    """A service's JSON log lines (anything else it printed left out)."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "msg" in record and "time" in record:
            records.append(record)
    return records


def _rounded(value: float | None) -> float | None:
    return round(value, 2) if value is not None else None


def prepare(cluster: NetnsCluster, tmp_path: Path, name: str) -> tuple[Node, str]:
    victim = cluster.node(1)
    vhost = cluster.new_vhost(f"cartero-{name}")
    topology(cluster, victim, vhost, tmp_path / "setup.log")
    for queue in ("cola_sms", "logs"):
        assert cluster.leader(vhost, queue) == victim.name, f"{queue}'s leader is not on {victim.name}"
    return victim, vhost


def assert_clients_on(victim: Node, vhost: str) -> dict[str, int]:
    """Every client connection of the vhost is on the victim (the management API lists a
    connection after its first statistics tick)."""
    on = wait_until(lambda: connections_by_node(victim, vhost) or None, timeout=15, what="connections listed")
    assert set(on) == {victim.name}, on
    return dict(on)


def assert_nothing_lost(result: dict[str, Any]) -> None:
    assert result["accepted"] > 0
    assert result["lost"] == 0, result
    assert result["provider_duplicates"] == 0, result


def slow_to_resume(result: dict[str, Any]) -> dict[str, float]:
    """The resumption times past RESUME_WITHIN_S, or missing (never resumed)."""
    times = {key: result[key] for key in ("sender_resumed_s", "consumer_resumed_s")}
    return {key: t for key, t in times.items() if t is None or t > RESUME_WITHIN_S}


@pytest.mark.timeout(240)
def test_killing_the_node_with_every_leader_and_client_loses_no_accepted_message(
    whole: NetnsCluster, tmp_path: Path
) -> None:
    victim, vhost = prepare(whole, tmp_path, "kill")
    with services(whole, victim, vhost, tmp_path) as running:
        clients = assert_clients_on(victim, vhost)
        load = Load(running.sender, running.token, RATE).start()
        time.sleep(BEFORE_LOSS_S)
        lost_at = time.monotonic()
        victim.kill()
        time.sleep(AFTER_KILL_S)
        answers = load.stop()
        accepted = {a.message_id for a in answers if a.status == 202 and a.message_id}
        wait_delivered(running, accepted)
        survivor = whole.node(2)
        result = figures(
            "kill",
            running,
            answers,
            lost_at,
            {
                "clients_before": clients,
                "leader_after": whole.leader(vhost, "cola_sms", via=survivor),
                "connections_after": connections_by_node(survivor, vhost),
            },
        )
    assert_nothing_lost(result)
    assert slow_to_resume(result) == {}, result


@pytest.mark.timeout(240)
def test_cutting_off_the_node_with_every_leader_and_client_for_20_s_loses_no_accepted_message(
    whole: NetnsCluster, tmp_path: Path
) -> None:
    victim, vhost = prepare(whole, tmp_path, "partition")
    with services(whole, victim, vhost, tmp_path) as running:
        clients = assert_clients_on(victim, vhost)
        load = Load(running.sender, running.token, RATE).start()
        time.sleep(BEFORE_LOSS_S)
        lost_at = time.monotonic()
        whole.cut(victim)
        paused_after: float | None = None
        while time.monotonic() < lost_at + CUT_FOR_S:
            if paused_after is None and not victim.running():
                paused_after = time.monotonic() - lost_at
            time.sleep(0.2)
        whole.heal(victim)
        healed_at = time.monotonic()
        whole.wait_members(3, via=whole.node(2))
        rejoined_after = time.monotonic() - healed_at
        time.sleep(AFTER_HEAL_S)
        answers = load.stop()
        accepted = {a.message_id for a in answers if a.status == 202 and a.message_id}
        wait_delivered(running, accepted)
        result = figures(
            "partition",
            running,
            answers,
            lost_at,
            {
                "cut_for_s": CUT_FOR_S,
                "victim_paused_after_s": _rounded(paused_after),
                "victim_rejoined_after_heal_s": round(rejoined_after, 2),
                "clients_before": clients,
                "leader_after": whole.leader(vhost, "cola_sms", via=whole.node(2)),
                "connections_after": connections_by_node(whole.node(2), vhost),
            },
        )
    assert paused_after is not None and paused_after < CUT_FOR_S, "the cut-off node never paused"
    assert_nothing_lost(result)
    assert slow_to_resume(result) == {}, result
