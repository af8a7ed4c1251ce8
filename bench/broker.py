"""The broker's own ceiling: a tight confirmed persistent publisher, no HTTP."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aio_pika
import pika


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


def purge(url: str, *queues: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_declare(queue, durable=True)
            channel.queue_purge(queue)
    finally:
        connection.close()
