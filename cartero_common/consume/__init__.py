"""The consumer framework: the one consume loop every consumer runs, and what it needs.

- `loop` (`ConsumerLoop`): reconnects, and runs one `connection.BrokerConnection` per broker connection (consume,
  settle, ack, stop);
- `outcomes`: what a handler returns for each delivery (`Done`, `TransientFailure`,
  `PermanentFailure`, `Unreadable`), and the `Delivery` it is handed;
- `connection`: one broker connection's life (consume, settle, ack, stop);
- `settle`: what each outcome publishes (retry copy, dead letter, `logs` event) before the ack;
- `acks`: acks held until those publishes are confirmed;
- `delivery`: a handler built from a message model and a send function (`sending_handler`);
- `failover`: an ordered list of providers, each behind a circuit breaker (`Failover`);
- `ledger`: the dedupe ledger (message ids already processed), with its own migrations;
- `dlq`: `replay-dlq`, moving dead letters back;
- `cli`: a consumer's command line and its loop from settings (`main`, `loop_from_settings`).
"""

from cartero_common.consume.cli import breaker_policy, loop_from_settings, main, run_delivering
from cartero_common.consume.delivery import DEFAULT_MAX_BODY, sending_handler
from cartero_common.consume.dlq import replay_dead_letters
from cartero_common.consume.failover import BreakerPolicy, CircuitBreaker, CircuitState, Failover
from cartero_common.consume.ledger import Ledger, migrate_ledger
from cartero_common.consume.loop import ConsumerLoop
from cartero_common.consume.outcomes import (
    BatchHandler,
    Delivery,
    Done,
    Failure,
    Outcome,
    PermanentFailure,
    TransientFailure,
    Unreadable,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "BatchHandler",
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitState",
    "ConsumerLoop",
    "Delivery",
    "Done",
    "Failover",
    "Failure",
    "Ledger",
    "Outcome",
    "PermanentFailure",
    "TransientFailure",
    "Unreadable",
    "breaker_policy",
    "loop_from_settings",
    "main",
    "migrate_ledger",
    "replay_dead_letters",
    "run_delivering",
    "sending_handler",
]
