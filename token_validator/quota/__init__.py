"""The quota decision of `POST /v1/validate`, and the counters it spends.

Read top-down: `entry` says which path decides a check; `fast` is the one-statement spend,
`general` the token read, checked in order and spent counter by counter, `batcher` puts the
concurrent fast spends of one token in one statement (PostgreSQL). Each statement sits next to
the code that runs it; `sql` holds what the two paths' statements share, `prepared` the
server-side prepared statements of the hot path, `counters` a counter's arithmetic and SQL
(also used by the admin API to change counters and by refunds).
"""

from token_validator.quota.batcher import SpendBatcher
from token_validator.quota.check import Check, Decision
from token_validator.quota.counters import (
    MAX_QUOTA,
    MONTHLY,
    UNLIMITED,
    CounterState,
    Limit,
    Restriction,
    grant_values,
    refundable,
    set_remaining_values,
    state_of,
)
from token_validator.quota.entry import PREPARED_STATEMENTS, decide, decide_alone
from token_validator.quota.prepared import prepare_on_connect

__all__ = [
    "MAX_QUOTA",
    "MONTHLY",
    "PREPARED_STATEMENTS",
    "UNLIMITED",
    "Check",
    "CounterState",
    "Decision",
    "Limit",
    "Restriction",
    "SpendBatcher",
    "decide",
    "decide_alone",
    "grant_values",
    "prepare_on_connect",
    "refundable",
    "set_remaining_values",
    "state_of",
]
