"""The peer a user would write instead of Cartero's sender: FastAPI and aio-pika, one long-lived
connection, one persistent message per request published with a confirm, and nothing else — no
token, no validation, no event, no idempotency. `python -m bench` runs it with the sender's
workers and load; `sender_vs_bare_publish` is how much of its rate the sender keeps while doing
all of that (two confirmed messages and a token decision per request)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractChannel
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cartero_common.wire import QUEUE_SMS

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
state: dict[str, AbstractChannel] = {}


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel(publisher_confirms=True)
    await channel.declare_queue(QUEUE_SMS, durable=True)
    state["channel"] = channel
    yield
    await connection.close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/sms")
async def send_sms(request: Request) -> JSONResponse:
    message_id = str(uuid.uuid4())
    message = aio_pika.Message(
        await request.body(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
    )
    await state["channel"].default_exchange.publish(message, routing_key=QUEUE_SMS)
    return JSONResponse({"id": message_id}, status_code=202)
