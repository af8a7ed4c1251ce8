"""RabbitMQ plumbing shared by every process (pika, blocking).

- `blocking`: connections (`connect`, `connection_parameters`, `wait_for_broker`), message
  properties and encoding, the shared queues' declare (argument-free under the default classic
  `CARTERO_QUEUE_TYPE`, see `queue_type`), a confirmed publisher for scripts and the consumers'
  side jobs.
- `queue_type`: classic or quorum, and what each adds to a declare.
- `topology`: our retry and dead-letter queues and the retry policy (`RetryPolicy`).
- `publisher`: the sender's asyncio publisher (aio-pika, not part of this facade so that the
  consumers need not install it): `from cartero_common.amqp.publisher import AsyncPublisher`.
- `setup`: `rabbitmq-setup`, which applies `rabbitmq/definitions.json` (operator tool).
"""

from cartero_common.amqp.blocking import (
    ConfirmedPublisher,
    connect,
    connection_parameters,
    declare_shared_queues,
    encode,
    message_properties,
    wait_for_broker,
)
from cartero_common.amqp.topology import (
    RetryPolicy,
    dead_letter_queue,
    declare_topology,
    delay_label,
    parse_delays,
    retry_queue,
)

__all__ = [
    "ConfirmedPublisher",
    "RetryPolicy",
    "connect",
    "connection_parameters",
    "dead_letter_queue",
    "declare_shared_queues",
    "declare_topology",
    "delay_label",
    "encode",
    "message_properties",
    "parse_delays",
    "retry_queue",
    "wait_for_broker",
]
