"""Drain rate of one consumer process, against a `basic_get` loop like the original PHP consumer.

    python -m bench.consumer_drain [--messages 20000] [--prefetch 10,50,100,200,500] [--rounds 3]

Fills `cola_sms` on a fresh vhost, then times how long one process takes, from the moment it is
consuming, until every `consumido` event is on `logs`:

- `consumer_sms` (`python -m consumer_sms`, log provider, SQLite ledger) at each prefetch;
- the seed's way (`basic_get`, log the SMS, publish the `consumido` event, ack, one message at a
  time), as its own process too.

Both log the same JSON line per SMS at the same level to a file, validate the message and publish
one persistent event per message, so the difference is the consume loop. `python -m bench` uses
`consumer_rate` and `get_loop_rate` from here for its drain figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pika

from cartero_common.amqp import declare_shared_queues, encode, message_properties
from cartero_common.clock import fecha, system_clock
from cartero_common.logging import configure_logging
from cartero_common.wire import QUEUE_LOGS, QUEUE_SMS, SmsMessage, consumed_event
from tests.support import isolated_vhost

ROOT = Path(__file__).resolve().parents[1]
LOG_LEVEL = "INFO"  # the consumers' default: the log provider writes its line per SMS
FILL_CHUNK = 20_000


def fill(url: str, count: int, *, filled: Callable[[int], None] | None = None) -> None:
    """`count` SMS on an emptied `cola_sms`, and an empty `logs`; `filled(n)` is told how many are
    in, every FILL_CHUNK."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel = declare_shared_queues(channel, (QUEUE_SMS, QUEUE_LOGS))  # a fresh vhost: a new channel
    channel.queue_purge(QUEUE_SMS)
    channel.queue_purge(QUEUE_LOGS)
    now = system_clock()
    for index in range(count):
        message_id = str(uuid.uuid4())
        body = {"id": message_id, "mensaje": "hola", "telefono": "+34600111222", "fecha": fecha(now, "Europe/Madrid")}
        channel._impl.basic_publish("", QUEUE_SMS, encode(body), message_properties(message_id, now=now))  # noqa: SLF001 - bulk fill only
        if index % FILL_CHUNK == FILL_CHUNK - 1:
            # A round trip now and then: a backlog of a million is not held in this process's
            # buffer, and the broker's flow control reaches the filler.
            channel.queue_declare(QUEUE_SMS, durable=True)
            if filled:
                filled(index + 1)
    channel.queue_declare(QUEUE_SMS, durable=True)  # a round trip: everything above was written
    connection.close()


def timed_drain(url: str, count: int, command: list[str], env: dict[str, str], log: Path, *, timeout: float) -> float:
    """Messages per second from the moment the process is consuming (holds a consumer, or took a
    first message) to the last event on `logs`; start-up and imports are not counted."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()

    def counts(queue: str) -> tuple[int, int]:
        method = channel.queue_declare(queue, passive=True).method
        return int(method.message_count), int(method.consumer_count)

    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, consumers = counts(QUEUE_SMS)
            if consumers or ready < count:
                break
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited early; see {log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command} did not start consuming in {timeout}s")
            time.sleep(0.005)
        started = time.perf_counter()
        while counts(QUEUE_LOGS)[0] < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{command} did not drain {count} messages in {timeout}s")
            time.sleep(0.02)
        return count / (time.perf_counter() - started)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        connection.close()


def seed_loop(url: str) -> None:
    """The original consumer's shape: basic_get one message, do it, publish the event, ack."""
    configure_logging("seed_consumer", LOG_LEVEL)
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


CONSUMER_SMS = [sys.executable, "-m", "consumer_sms"]


def consumer_env(url: str, workdir: Path, *, prefetch: int | None = None) -> dict[str, str]:
    """`python -m consumer_sms` with the log provider and a new SQLite ledger under `workdir`."""
    env = dict(
        os.environ,
        AMQP_URL=url,
        LOG_LEVEL=LOG_LEVEL,
        SMS_PROVIDER="log",
        DATABASE_URL=f"sqlite:///{workdir}/ledger-{uuid.uuid4().hex}.db",
        CONSUMER_SMS_METRICS_PORT="0",
    )
    if prefetch is not None:
        env["CONSUMER_SMS_PREFETCH"] = str(prefetch)
    else:
        env.pop("CONSUMER_SMS_PREFETCH", None)
    return env


def consumer_rate(url: str, count: int, workdir: Path, *, prefetch: int | None = None, timeout: float = 300) -> float:
    """One `python -m consumer_sms` (log provider, SQLite ledger) draining `count` SMS."""
    fill(url, count)
    env = consumer_env(url, workdir, prefetch=prefetch)
    return timed_drain(url, count, CONSUMER_SMS, env, workdir / "consumer_sms.log", timeout=timeout)


def get_loop_rate(url: str, count: int, workdir: Path, *, timeout: float = 300) -> float:
    """The seed's `basic_get` loop, as its own process, draining `count` SMS."""
    fill(url, count)
    command = [sys.executable, "-m", "bench.consumer_drain", "--seed-loop", url]
    return timed_drain(url, count, command, dict(os.environ), workdir / "seed_consumer.log", timeout=timeout)


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
    runs: dict[str, list[float]] = {}
    with isolated_vhost("cartero-bench") as url, tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for prefetch in [int(p) for p in args.prefetch.split(",")]:
                name = f"consumer_sms prefetch={prefetch}"
                runs.setdefault(name, []).append(consumer_rate(url, args.messages, Path(tmp), prefetch=prefetch))
                print(f"{name:28} {runs[name][-1]:8.0f} msg/s", flush=True)
            runs.setdefault("basic_get loop", []).append(get_loop_rate(url, args.messages, Path(tmp)))
            print(f"{'basic_get loop':28} {runs['basic_get loop'][-1]:8.0f} msg/s", flush=True)
    results = {name: statistics.median(rates) for name, rates in runs.items()}
    best = max(v for k, v in results.items() if k.startswith("consumer_sms"))
    ratio = best / results["basic_get loop"]
    print(f"medians over {args.rounds} round(s); best consumer_sms / basic_get loop: {ratio:.1f}x")
    summary = {"machine": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    print(json.dumps({**summary, "messages": args.messages, "msg_per_s": results}))


if __name__ == "__main__":
    main()
