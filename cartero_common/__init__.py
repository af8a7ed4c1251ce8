"""Code every Cartero service shares. It takes explicit arguments and never imports a service
(tests/test_architecture.py holds both rules).

- `amqp`: RabbitMQ connections, message encoding, our retry/DLQ topology; `amqp.publisher`, the
  sender's asyncio publisher; `amqp.setup`, `rabbitmq-setup`.
- `consume`: the consume loop every consumer runs, its outcomes, acks, dedupe ledger, DLQ replay
  and command line.
- `wire`: what travels on the queues and the sender's API: message and request schemas, queue
  names, the `logs` events.
- Basics: `settings` (the settings base), `db` (engines, migrations), `http` (problem+json for the
  FastAPI services), `logging` (JSON lines), `metrics`, `clock`, `readiness` (`make run`'s wait).
"""

__all__: list[str] = []
