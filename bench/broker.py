"""Broker-side figures: the confirmed-publish ceiling, and draining a queue two ways."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import aio_pika
import pika

from cartero_common.clock import fecha
from cartero_common.schemas import QUEUE_LOGS, QUEUE_SMS, consumed_event


def sms_body(index: int) -> bytes:
    message = {
        "id": str(uuid.uuid4()),
        "mensaje": f"bench {index}",
        "telefono": "+34600111222",
        "fecha": "2026-01-01 00:00:00",
    }
    return json.dumps(message).encode()


async def confirmed_publish_rate(url: str, *, queue: str, seconds: float, window: int = 256) -> float:
    """The ceiling: persistent messages with publisher confirms, `window` in flight, no HTTP."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        in_flight = asyncio.Semaphore(window)
        confirmed = 0
        deadline = time.perf_counter() + seconds

        async def publish_one(index: int) -> None:
            nonlocal confirmed
            try:
                await channel.default_exchange.publish(
                    aio_pika.Message(sms_body(index), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue,
                )
                confirmed += 1
            finally:
                in_flight.release()

        started = time.perf_counter()
        tasks: set[asyncio.Task[None]] = set()
        index = 0
        while time.perf_counter() < deadline:
            await in_flight.acquire()
            task = asyncio.create_task(publish_one(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            index += 1
        await asyncio.gather(*tasks)
        return confirmed / (time.perf_counter() - started)
    finally:
        await connection.close()


def prefill(url: str, queue: str, count: int) -> None:
    async def fill() -> None:
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await channel.declare_queue(queue, durable=True)
            for start in range(0, count, 500):
                await asyncio.gather(
                    *(
                        channel.default_exchange.publish(
                            aio_pika.Message(sms_body(i), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                            routing_key=queue,
                        )
                        for i in range(start, min(count, start + 500))
                    )
                )
        finally:
            await connection.close()

    asyncio.run(fill())


def purge(url: str, *queues: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_declare(queue, durable=True)
            channel.queue_purge(queue)
    finally:
        connection.close()


def get_loop_rate(url: str, count: int) -> float:
    """The original consumer: `basic_get` one message, do the work (log event), ack, repeat."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        done = 0
        started = time.perf_counter()
        while done < count:
            method, _, body = channel.basic_get(QUEUE_SMS)
            if method is None:
                break
            message = json.loads(body)
            event = consumed_event(message, queue=QUEUE_SMS, fecha_consumo=fecha(datetime.now(UTC), "Europe/Madrid"))
            channel.basic_publish("", QUEUE_LOGS, json.dumps(event), pika.BasicProperties(delivery_mode=2))
            channel.basic_ack(method.delivery_tag)
            done += 1
        return done / (time.perf_counter() - started)
    finally:
        connection.close()


def queue_depth(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


def drain_rate(url: str, count: int, command: Sequence[str], env: dict[str, str], *, timeout: float) -> float:
    """Start a consumer process on a full queue. Each message it finishes puts one event on
    `logs` (which nothing consumes here), so the rate runs from its first event to its last."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(QUEUE_LOGS, durable=True)
    process = subprocess.Popen(list(command), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        first: tuple[float, int] | None = None
        while time.monotonic() < deadline:
            events = queue_depth(channel, QUEUE_LOGS)
            now = time.perf_counter()
            if first is None and events > 0:
                first = (now, events)
            if first is not None and events >= count:
                return (events - first[1]) / (now - first[0])
            time.sleep(0.01)
        raise TimeoutError(f"the consumer did not drain {count} messages in {timeout}s")
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        connection.close()
