"""Which path decides a check: the fast path if it applies, else the general path.

- `fast`: one statement checks and spends; it applies to a check that spends (cost > 0), carries
  no Idempotency-Key and presents a well-formed token, and allows it or spends nothing.
- `general`: the token read, checked in order and spent counter by counter; it decides whatever
  the fast path did not allow, and stores the refusals.
- `batcher`: on PostgreSQL, concurrent fast spends of one token go together in one statement.

A decision whose database connection died (server restart, idle timeout) is tried again once
(`db.retry_once`): the batch's statement, or the decision made in a thread.
"""

from __future__ import annotations

from fastapi.concurrency import run_in_threadpool

from token_validator.db import Database, retry_once
from token_validator.moment import Moment
from token_validator.prepared import Prepared
from token_validator.quota import fast, general  # the modules, not the package facade
from token_validator.quota.batcher import SpendBatcher
from token_validator.quota.check import Check, Decision
from token_validator.token_strings import digest, kind_of

# What each connection of the hot-path pool prepares (`prepared.prepare_on_connect`).
PREPARED_STATEMENTS: list[Prepared] = [fast.SPEND_BATCH_PREPARED, general.READ_TOKEN_PREPARED]


async def decide(db: Database, batcher: SpendBatcher | None, check: Check, moment: Moment) -> Decision:
    """The decision for `check` at `moment`, off the event loop. With a batcher (PostgreSQL), a
    fast-path check is spent together with the others of its token; one it cannot allow goes on
    to the general path."""
    if batcher is not None and fast.applies(check):
        hashed = digest(check.token)
        allowed = await batcher.spend(hashed, check, moment)
        if allowed is not None:
            return allowed
        return await run_in_threadpool(_general_path, db, hashed, check, moment)
    return await run_in_threadpool(decide_alone, db, check, moment)


@retry_once
def decide_alone(db: Database, check: Check, moment: Moment) -> Decision:
    """`decide` in the calling thread, without a batcher: refusals are stored before returning."""
    if kind_of(check.token) is None:
        return general.refuse_malformed(db, check, moment)
    hashed = digest(check.token)
    if fast.applies(check) and (allowed := fast.spend(db, hashed, check, moment)) is not None:
        return allowed
    return general.decide(db, hashed, check, moment)


@retry_once
def _general_path(db: Database, hashed: str, check: Check, moment: Moment) -> Decision:
    """The general path for a check the batcher's fast path could not allow."""
    return general.decide(db, hashed, check, moment)
