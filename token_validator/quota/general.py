"""The general path: read the token, check it in order, spend counter by counter.

Checks in docs/design.md §6's order: exists → revoked → expired → owner disabled → action → quota; a
refusal earlier in the list spends nothing, and every refusal is stored. The token and each
limited group it draws on are spent in one transaction, each by a conditional UPDATE that
matches no row when its counter has not enough left (then nothing is spent: the transaction
rolls back). An Idempotency-Key is claimed in that same transaction.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Integer, Row, bindparam, func, select, update

from token_validator import idempotency, refusals
from token_validator.counters import (
    UNLIMITED,
    CounterState,
    binding_limit,
    counted_period,
    spend_values,
    state_of,
    within_quota,
)
from token_validator.db import Database
from token_validator.models import Application, Group, Membership, Token, User
from token_validator.moment import Moment, as_utc
from token_validator.prepared import prepare
from token_validator.quota.check import OK, Check, Decision, counters_public
from token_validator.quota.sql import (
    COST,
    DIGEST,
    INSERT_USAGE,
    NOW,
    OWNER_ID,
    OWNER_NAME,
    PERIOD,
    SPENT,
    TOKEN_ID,
    USABLE,
    correlated,
    params,
)
from token_validator.token_strings import allows, presented_prefix

GROUP_ID = bindparam("p_group_id", type_=Integer)
USER_ID = bindparam("p_user_id", type_=Integer)

OWNER_DISABLED = func.coalesce(
    correlated(select(Application.disabled).where(Application.id == Token.application_id)),
    correlated(select(Group.disabled).where(Group.id == Token.group_id)),
    correlated(select(User.disabled).where(User.id == Token.user_id)),
)
COUNTER_OF_TOKEN = (Token.restriction, Token.quota, Token.used, Token.period)
COUNTER_OF_GROUP = (Group.restriction, Group.quota, Group.used, Group.period)

READ_TOKEN = select(
    *SPENT,
    Token.digest,
    Token.actions,
    Token.expires_at,
    Token.revoked_at,
    Token.group_id,
    Token.user_id,
    OWNER_NAME.label("owner"),
    OWNER_ID.label("owner_id"),
    OWNER_DISABLED.label("owner_disabled"),
).where(Token.digest == DIGEST)
READ_TOKEN_PREPARED = prepare("cartero_read_token", READ_TOKEN)

_GROUP_COLUMNS = (Group.id, *COUNTER_OF_GROUP)
GROUP_COUNTERS_OF_GROUP = select(*_GROUP_COLUMNS).where(Group.id == GROUP_ID, Group.restriction != UNLIMITED)
# Ascending ids: every spender locks counters in the same order, so none can deadlock.
GROUP_COUNTERS_OF_USER = (
    select(*_GROUP_COLUMNS)
    .join(Membership, Membership.group_id == Group.id)
    .where(Membership.user_id == USER_ID, Group.restriction != UNLIMITED)
    .order_by(Group.id)
)

SPEND_TOKEN = (
    update(Token)
    .where(Token.id == TOKEN_ID, USABLE, within_quota(Token, COST, PERIOD))
    .values(**spend_values(Token, COST, PERIOD), last_used_at=NOW)
    .returning(*COUNTER_OF_TOKEN)
)
SPEND_GROUP = (
    update(Group)
    .where(Group.id == GROUP_ID, within_quota(Group, COST, PERIOD))
    .values(**spend_values(Group, COST, PERIOD))
    .returning(*COUNTER_OF_GROUP)
)
READ_GROUP_COUNTER = select(*COUNTER_OF_GROUP).where(Group.id == GROUP_ID)


def decide(db: Database, hashed: str, check: Check, moment: Moment) -> Decision:
    """The decision for a well-formed `check` (its token's digest: `hashed`) at `moment`; a
    refusal is stored before returning. A lost connection is retried by the caller (`entry`)."""
    decision = idempotency.retry_on_conflict(lambda: _decide(db, hashed, check, moment))
    if not decision.allowed and decision.idempotency is None:
        refusals.record(
            db,
            at=moment.now,
            token_id=decision.token_id,
            prefix=decision.prefix or presented_prefix(check.token),
            action=check.action,
            code=decision.code,
            client_ip=check.client_ip,
            request_id=check.request_id,
        )
    return decision


def refuse_malformed(db: Database, check: Check, moment: Moment) -> Decision:
    """`check` presents something without a token's shape: nothing to look up. Counted per client
    and minute, so a flood of junk is a few rows."""
    refusals.record_malformed(
        db, at=moment.now, action=check.action, client_ip=check.client_ip, request_id=check.request_id
    )
    return Decision(allowed=False, code=refusals.MALFORMED_CODE)


def _decide(db: Database, hashed: str, check: Check, moment: Moment) -> Decision:
    with db.single() as connection:
        token = _read_token(connection, hashed, prepared=db.hot is not None)
        early = _early_refusal(token, hashed, check.action, moment)
        groups = _limited_groups(connection, token) if token is not None and early is None else []
    if token is None:
        return Decision(allowed=False, code="invalid_token")
    base = Decision(
        allowed=False,
        code=early or OK,
        token_id=token.id,
        kind=token.kind,
        prefix=token.prefix,
        owner=token.owner,
        owner_id=token.owner_id,
    )
    states = [state_of(token)] + [state_of(g) for g in groups]
    if early is not None:
        return base
    if check.cost == 0:
        short = next((s for s in states if s.remaining(moment.period) == 0), None)
        limit = binding_limit(states, moment.period, moment.next_month)
        code = short.exhausted_code() if short else OK
        counters = counters_public(_scopes(token, groups), states, moment)
        return replace(base, allowed=short is None, code=code, limit=limit, counters=counters)
    usage_id = uuid.uuid4().hex
    try:
        with db.engine.begin() as connection:
            claim = None
            if check.idempotency is not None:
                claim = idempotency.claim(connection, token.id, check.idempotency, usage_id, moment)
                if claim.outcome != idempotency.NEW:
                    limit = binding_limit(states, moment.period, moment.next_month)
                    return replace(
                        base,
                        allowed=claim.allowed,
                        code=claim.code,
                        limit=limit,
                        idempotency=claim,
                        usage_id=claim.usage_id,
                    )
            spent = _spend_all(connection, token, groups, check, moment, usage_id)
    except _Refused as refused:
        limit = binding_limit([refused.counter], moment.period, moment.next_month) if refused.counter else None
        return replace(base, code=refused.code, limit=limit)
    limit = binding_limit(spent, moment.period, moment.next_month)
    counters = counters_public(_scopes(token, groups), spent, moment)
    return replace(base, allowed=True, code=OK, limit=limit, usage_id=usage_id, idempotency=claim, counters=counters)


def _read_token(connection: Connection, hashed: str, *, prepared: bool = False) -> Row[Any] | None:
    if prepared:
        return READ_TOKEN_PREPARED.run(connection, {"p_digest": hashed})
    return connection.execute(READ_TOKEN, {"p_digest": hashed}).one_or_none()  # type: ignore[return-value]


def _limited_groups(connection: Connection, token: Row[Any]) -> list[Row[Any]]:
    if token.kind == "group":
        return list(connection.execute(GROUP_COUNTERS_OF_GROUP, {"p_group_id": token.group_id}))
    if token.kind == "user":
        return list(connection.execute(GROUP_COUNTERS_OF_USER, {"p_user_id": token.user_id}))
    return []


def _early_refusal(token: Row[Any] | None, hashed: str, action: str, moment: Moment) -> str | None:
    """The first check (before the quota) that refuses, if any."""
    if token is None or not hmac.compare_digest(token.digest, hashed):
        return "invalid_token"
    if token.revoked_at is not None:
        return "token_revoked"
    expires_at = as_utc(token.expires_at)
    if expires_at is not None and expires_at <= moment.now:
        return "token_expired"
    if token.owner_disabled:
        return "subject_disabled"
    if not allows(token.actions, action):
        return "action_forbidden"
    return None


class _Refused(Exception):
    def __init__(self, code: str, counter: CounterState | None) -> None:
        self.code = code
        self.counter = counter


def _spend_all(
    connection: Connection, token: Row[Any], groups: list[Row[Any]], check: Check, moment: Moment, usage_id: str
) -> list[CounterState]:
    """Spend from the token and from each limited group, in one transaction; `_Refused` (and the
    caller's rollback) if any counter has not enough left."""
    values = params(check, moment, token_id=token.id, usage_id=usage_id)
    spent_token = connection.execute(SPEND_TOKEN, values).one_or_none()
    if spent_token is None:
        again = _read_token(connection, token.digest)
        code = _early_refusal(again, token.digest, check.action, moment)
        current = state_of(again) if again is not None else None
        raise _Refused(code or (current.exhausted_code() if current else "invalid_token"), current)
    counters = [state_of(spent_token)]
    for group in groups:
        spent_group = connection.execute(SPEND_GROUP, {**values, "p_group_id": group.id}).one_or_none()
        if spent_group is None:
            current = state_of(connection.execute(READ_GROUP_COUNTER, {"p_group_id": group.id}).one())
            raise _Refused(current.exhausted_code(), current)
        counters.append(state_of(spent_group))
    group_ids = ",".join(str(g.id) for g in groups)
    counted = counted_period(counters, moment.period)
    connection.execute(INSERT_USAGE, {**values, "p_group_ids": group_ids, "p_period": counted})
    return counters


def _scopes(token: Row[Any], groups: list[Row[Any]]) -> list[tuple[str, int]]:
    return [("token", token.id)] + [("group", g.id) for g in groups]
