"""Drain rate of one consumer process, against a `basic_get` loop like the original PHP consumer.

    python -m bench.consumer_drain [--messages 20000] [--prefetch 10,50,100,200,500]

Fills `cola_sms` on a fresh vhost of the broker at AMQP_URL's host, then times how long one
process takes until every `consumido` event is on `logs`:

- `consumer_sms` (`python -m consumer_sms`, log provider, SQLite ledger) at each prefetch;
- the seed's way (`basic_get`, log the SMS, publish the `consumido` event, ack, one message
  at a time), as its own process too.

Both log one JSON line per SMS to a file and publish one event per message, so the difference
is the consume loop. Needs the management API (guest/guest) to make and remove the vhost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlparse

import httpx
import pika

from cartero_common.amqp import declare_shared_queues, encode, message_properties
from cartero_common.clock import fecha, system_clock
from cartero_common.logging import configure_logging
from cartero_common.schemas import QUEUE_LOGS, QUEUE_SMS, SmsMessage, consumed_event

ROOT = Path(__file__).resolve().parents[1]


def fill(url: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    declare_shared_queues(channel, (QUEUE_SMS, QUEUE_LOGS))
    channel.queue_purge(QUEUE_LOGS)
    now = system_clock()
    for _ in range(count):
        message_id = str(uuid.uuid4())
        body = {"id": message_id, "mensaje": "hola", "telefono": "+34600111222", "fecha": fecha(now, "Europe/Madrid")}
        channel._impl.basic_publish("", QUEUE_SMS, encode(body), message_properties(message_id, now=now))  # noqa: SLF001 - bulk fill only
    channel.queue_declare(QUEUE_SMS, durable=True)  # a round trip: everything above was written
    connection.close()


def counts(url: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of `queue`."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        method = connection.channel().queue_declare(queue, passive=True).method
        return int(method.message_count), int(method.consumer_count)
    finally:
        connection.close()


def timed_drain(
    url: str, count: int, command: list[str], env: dict[str, str], log: Path, *, get_loop: bool = False
) -> float:
    """Messages per second from the moment the process is consuming to the last event."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        if get_loop:
            started = time.perf_counter()
        else:
            while counts(url, QUEUE_SMS)[1] == 0:
                if process.poll() is not None:
                    raise SystemExit(f"{command} exited early; see {log}")
                time.sleep(0.02)
            started = time.perf_counter()
        while counts(url, QUEUE_LOGS)[0] < count:
            time.sleep(0.05)
        return count / (time.perf_counter() - started)
    finally:
        process.terminate()
        process.wait(30)


def seed_loop(url: str) -> None:
    """The original consumer's shape: basic_get one message, do it, publish the event, ack."""
    configure_logging("seed_consumer", "INFO")
    import logging

    log = logging.getLogger("seed_consumer")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    while True:
        method, _, body = channel.basic_get(QUEUE_SMS, auto_ack=False)
        if method is None:
            break
        payload = json.loads(body)
        sms = SmsMessage.model_validate(payload)
        log.info("sms sent", extra={"id": sms.id, "telefono": sms.telefono, "chars": len(sms.mensaje)})
        now = system_clock()
        event = consumed_event(payload, queue=QUEUE_SMS, fecha_consumo=fecha(now, "Europe/Madrid"))
        channel.basic_publish("", QUEUE_LOGS, encode(event), message_properties(sms.id, now=now))
        channel.basic_ack(method.delivery_tag)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.consumer_drain")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--prefetch", default="10,50,100,200,500,1000")
    parser.add_argument("--rounds", type=int, default=1, help="repeat and report medians (machines are noisy)")
    parser.add_argument("--seed-loop", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_loop:
        seed_loop(args.seed_loop)
        return
    base = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
    host = urlparse(base).hostname or "127.0.0.1"
    api = f"http://{host}:15672/api"
    vhost = f"cartero-bench-{uuid.uuid4().hex[:8]}"
    httpx.put(f"{api}/vhosts/{vhost}", auth=("guest", "guest")).raise_for_status()
    httpx.put(
        f"{api}/permissions/{vhost}/guest",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        auth=("guest", "guest"),
    ).raise_for_status()
    url = f"amqp://guest:guest@{host}:5672/{quote(vhost, safe='')}"
    runs: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):
                for name, rate in one_round(url, args.messages, [int(p) for p in args.prefetch.split(",")], Path(tmp)):
                    runs.setdefault(name, []).append(rate)
                    print(f"{name:28} {rate:8.0f} msg/s", flush=True)
    finally:
        httpx.delete(f"{api}/vhosts/{vhost}", auth=("guest", "guest"))
    results = {name: statistics.median(rates) for name, rates in runs.items()}
    best = max(v for k, v in results.items() if k.startswith("consumer_sms"))
    ratio = best / results["basic_get loop"]
    print(f"medians over {args.rounds} round(s); best consumer_sms / basic_get loop: {ratio:.1f}x")
    summary = {
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "load": os.getloadavg(),
        "messages": args.messages,
    }
    print(json.dumps({**summary, "msg_per_s": results}))


def one_round(url: str, count: int, prefetches: list[int], tmp: Path) -> list[tuple[str, float]]:
    rates = []
    for prefetch in prefetches:
        fill(url, count)
        env = dict(
            os.environ,
            AMQP_URL=url,
            DATABASE_URL=f"sqlite:///{tmp}/ledger-{uuid.uuid4().hex}.db",
            CONSUMER_SMS_PREFETCH=str(prefetch),
            CONSUMER_SMS_METRICS_PORT="0",
        )
        command = [sys.executable, "-m", "consumer_sms"]
        rates.append((f"consumer_sms prefetch={prefetch}", timed_drain(url, count, command, env, tmp / "c.log")))
    fill(url, count)
    command = [sys.executable, "-m", "bench.consumer_drain", "--seed-loop", url]
    rates.append(("basic_get loop", timed_drain(url, count, command, dict(os.environ), tmp / "s.log", get_loop=True)))
    return rates


if __name__ == "__main__":
    main()
