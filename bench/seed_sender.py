"""The original design's sender, rebuilt for comparison: for every request a new AMQP
connection, both queues declared, the message and its log event published, the connection
closed. No token check and no publisher confirms, as in the PHP original, so it does less work
per request than Cartero's sender."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime

import pika
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cartero_common.clock import fecha
from cartero_common.wire import QUEUE_LOGS, QUEUE_SMS, sent_event

AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@localhost:5672/")
app = FastAPI()


@app.post("/v1/sms")
def send_sms(body: dict[str, str], request: Request) -> JSONResponse:
    message = {"id": str(uuid.uuid4()), **body, "fecha": fecha(datetime.now(UTC), "Europe/Madrid")}
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        channel = connection.channel()
        channel.queue_declare(QUEUE_SMS, durable=True)
        channel.queue_declare(QUEUE_LOGS, durable=True)
        persistent = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        channel.basic_publish("", QUEUE_SMS, json.dumps(message), persistent)
        channel.basic_publish("", QUEUE_LOGS, json.dumps(sent_event(message, queue=QUEUE_SMS)), persistent)
    finally:
        connection.close()
    return JSONResponse({"id": message["id"]}, status_code=202)
