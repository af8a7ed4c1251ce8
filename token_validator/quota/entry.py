"""Which path decides a check: the fast path if it applies, else the general path.

- `fast`: one statement checks and spends; it applies to a check that spends (cost > 0), carries
  no Idempotency-Key and presents a well-formed token, and allows it or spends nothing.
- `general`: the token read, checked in order and spent counter by counter; it decides whatever
  the fast path did not allow, and stores the refusals.
- `batcher`: on PostgreSQL, concurrent fast spends of one token go together in one statement.
- `token_validator.rates`: a token (or group) with a rate limit takes a slot of it first, in
  memory; over it the answer is `rate_limited` at once, with nothing read, spent or written but
  the counted refusal. A slot of a validation that then spends nothing goes back.

A decision whose database connection died (server restart, idle timeout) is tried again once
(`db.retry_once`): the batch's statement, or the decision made in a thread.
"""

from __future__ import annotations

from dataclasses import replace

from fastapi.concurrency import run_in_threadpool

from token_validator import idempotency
from token_validator.db import Database, retry_once
from token_validator.moment import Moment
from token_validator.prepared import Prepared
from token_validator.quota import fast, general  # the modules, not the package facade
from token_validator.quota.batcher import SpendBatcher
from token_validator.quota.check import Check, Decision
from token_validator.rates import RateLimiter
from token_validator.rates.limiter import Refused
from token_validator.token_strings import digest, kind_of

# What each connection of the hot-path pool prepares (`prepared.prepare_on_connect`).
PREPARED_STATEMENTS: list[Prepared] = [fast.SPEND_BATCH_PREPARED, general.READ_TOKEN_PREPARED]


RATE_LIMITED = "rate_limited"


async def decide(
    db: Database, batcher: SpendBatcher | None, check: Check, moment: Moment, rates: RateLimiter | None = None
) -> Decision:
    """The decision for `check` at `moment`, off the event loop, its rate limits (if any) first."""
    if rates is None or check.cost == 0 or kind_of(check.token) is None:
        return await _decide_quota(db, batcher, check, moment)
    subject = await rates.subject(digest(check.token))
    if subject is None or not subject.scopes:
        return await _decide_quota(db, batcher, check, moment)
    held = await rates.hold(subject, moment.now)
    if isinstance(held, Refused):
        await rates.refused(
            held, action=check.action, client_ip=check.client_ip, request_id=check.request_id, at=moment.now
        )
        return Decision(
            allowed=False,
            code=RATE_LIMITED,
            token_id=subject.token_id,
            kind=subject.kind,
            prefix=subject.prefix,
            rate=held.state,
        )
    try:
        decision = await _decide_quota(db, batcher, check, moment)
    except BaseException:
        rates.give_back(held)
        raise
    claim = decision.idempotency
    if not decision.allowed or (claim is not None and claim.outcome != idempotency.NEW):
        rates.give_back(held)  # nothing spent: the rate counts spent uses only
        return decision
    return replace(decision, rate=held.state)


async def _decide_quota(db: Database, batcher: SpendBatcher | None, check: Check, moment: Moment) -> Decision:
    """The decision without rates. With a batcher (PostgreSQL), a fast-path check is spent
    together with the others of its token; one it cannot allow goes on to the general path."""
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
