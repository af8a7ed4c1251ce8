"""The quota decision of `POST /v1/validate`.

Read top-down: `entry` says which path decides a check; `fast` is the one-statement spend,
`general` the token read, checked in order and spent counter by counter, `batcher` puts the
concurrent fast spends of one token in one statement (PostgreSQL). Each statement sits next to
the code that runs it; `sql` holds what the two paths' statements share, `prepared` the
server-side prepared statements of the hot path. The counters they spend, and their SQL, are
`token_validator.counters` (the admin API changes them too).
"""

from token_validator.quota.batcher import SpendBatcher
from token_validator.quota.check import Check, Decision
from token_validator.quota.entry import PREPARED_STATEMENTS, decide, decide_alone

__all__ = ["PREPARED_STATEMENTS", "Check", "Decision", "SpendBatcher", "decide", "decide_alone"]
