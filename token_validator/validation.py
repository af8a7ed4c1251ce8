"""One decision about one presented token (`POST /v1/validate`).

Checks in docs/design.md §6's order: exists → revoked → expired → owner disabled → action → quota; a
refusal earlier in the list spends nothing, and every refusal is stored.

The hot path is one statement: a conditional UPDATE of the token row that carries every check in
its WHERE clause (on PostgreSQL, with the usage record inserted by the same statement). It only
applies when no group quota is involved; when it matches no row, the general path reads the
token, finds out why, and spends counter by counter in one transaction.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Engine, Row

from token_validator import idempotency, refusals
from token_validator import statements as sql
from token_validator.db import Database, retry_once
from token_validator.idempotency import Claim, IdempotencyRequest
from token_validator.moment import Moment, as_utc
from token_validator.quota import UNLIMITED, CounterState, Limit, binding_limit, state_of
from token_validator.tokens import allows, digest, kind_of, presented_prefix

OK = "ok"


@dataclass(frozen=True)
class Check:
    token: str
    action: str
    cost: int = 1
    request_id: str | None = None
    client_ip: str | None = None
    idempotency: IdempotencyRequest | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    code: str
    token_id: int | None = None
    kind: str | None = None
    prefix: str | None = None
    owner: str | None = None
    limit: Limit | None = None
    usage_id: str | None = None
    idempotency: Claim | None = None
    counters: list[dict[str, Any]] = field(default_factory=list)


def _params(check: Check, moment: Moment, **extra: Any) -> dict[str, Any]:
    """Values for the bound parameters of `statements` (`p_<name>`)."""
    values = {
        "now": moment.now,
        "cost": check.cost,
        "period": moment.period,
        "day": moment.day,
        "action_pattern": sql.action_pattern(check.action),
        **extra,
    }
    return {f"p_{name}": value for name, value in values.items()}


def fast_path_applies(check: Check) -> bool:
    """Whether the one-statement spend may decide `check` (no group quota is known before it runs;
    a token with one simply matches no row there)."""
    return check.cost > 0 and check.idempotency is None and kind_of(check.token) is not None


def _spend_together(hot: Engine, hashed: str, checks: Sequence[Check], moment: Moment) -> list[Decision] | None:
    """PostgreSQL: allow every check of `checks` (one token, one action, one cost) in one prepared,
    autocommitted statement, or none of them."""
    first = checks[0]
    usage_ids = [uuid.uuid4().hex for _ in checks]
    params = _params(first, moment, digest=hashed, usage_ids=usage_ids, group_ids="", total=first.cost * len(checks))
    with hot.connect() as connection:
        row = sql.PREPARED["fast_spend"].run(connection, params)
    if row is None:
        return None
    after = state_of(row)
    decisions = []
    for position, usage_id in enumerate(usage_ids):
        # Told as if decided one after another in arrival order: the last one sees what is left.
        counter = replace(after, used=after.used - (len(checks) - 1 - position) * first.cost)
        decisions.append(_allowed(row, counter, usage_id, moment))
    return decisions


def _allowed(row: Row[Any], counter: CounterState, usage_id: str, moment: Moment) -> Decision:
    return Decision(
        allowed=True,
        code=OK,
        token_id=row.id,
        kind=row.kind,
        prefix=row.prefix,
        owner=row.owner,
        limit=binding_limit([counter], moment.period, moment.next_month),
        usage_id=usage_id,
        counters=_counters_public([("token", row.id)], [counter], moment),
    )


@retry_once
def decide_together(db: Database, hashed: str, checks: Sequence[Check], moment: Moment) -> Sequence[Decision | None]:
    """The fast-path decisions of `checks` (one token, action and cost; see `batching`): all of
    them in one statement when the total fits, else each in its own. None for a check the fast
    path cannot allow alone: `decide(..., fast_tried=True)` finds out why."""
    if db.hot is None:
        raise ValueError("deciding together needs PostgreSQL's hot-path engine")
    together = _spend_together(db.hot, hashed, checks, moment)
    if together is not None:
        return together
    if len(checks) == 1:
        return [None]
    alone = (_spend_together(db.hot, hashed, [check], moment) for check in checks)
    return [decisions[0] if decisions else None for decisions in alone]


def _fast_spend(db: Database, hashed: str, check: Check, moment: Moment) -> Decision | None:
    if db.hot is not None:
        decisions = _spend_together(db.hot, hashed, [check], moment)
        return decisions[0] if decisions else None
    usage_id = uuid.uuid4().hex
    params = _params(check, moment, digest=hashed, usage_id=usage_id, group_ids="")
    with db.engine.begin() as connection:
        row = connection.execute(sql.FAST_SPEND_RETURNING, params).one_or_none()
        if row is not None:
            connection.execute(sql.INSERT_USAGE, {**params, "p_token_id": row.id})
    if row is None:
        return None
    return _allowed(row, state_of(row), usage_id, moment)


def _read_token(connection: Connection, hashed: str, *, prepared: bool = False) -> Row[Any] | None:
    if prepared:
        return sql.PREPARED["read_token"].run(connection, {"p_digest": hashed})
    return connection.execute(sql.READ_TOKEN, {"p_digest": hashed}).one_or_none()  # type: ignore[return-value]


def _limited_groups(connection: Connection, token: Row[Any]) -> list[Row[Any]]:
    if token.kind == "group":
        return list(connection.execute(sql.GROUP_COUNTERS_OF_GROUP, {"p_group_id": token.group_id}))
    if token.kind == "user":
        return list(connection.execute(sql.GROUP_COUNTERS_OF_USER, {"p_user_id": token.user_id}))
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
    params = _params(check, moment, token_id=token.id, usage_id=usage_id)
    spent_token = connection.execute(sql.SPEND_TOKEN, params).one_or_none()
    if spent_token is None:
        again = _read_token(connection, token.digest)
        code = _early_refusal(again, token.digest, check.action, moment)
        current = state_of(again) if again is not None else None
        raise _Refused(code or (current.exhausted_code() if current else "invalid_token"), current)
    counters = [state_of(spent_token)]
    for group in groups:
        spent_group = connection.execute(sql.SPEND_GROUP, {**params, "p_group_id": group.id}).one_or_none()
        if spent_group is None:
            current = state_of(connection.execute(sql.READ_GROUP_COUNTER, {"p_group_id": group.id}).one())
            raise _Refused(current.exhausted_code(), current)
        counters.append(state_of(spent_group))
    connection.execute(sql.INSERT_USAGE, {**params, "p_group_ids": ",".join(str(g.id) for g in groups)})
    return counters


def _counters_public(scopes: list[tuple[str, int]], states: list[CounterState], moment: Moment) -> list[dict[str, Any]]:
    return [
        {
            "scope": scope,
            "id": ident,
            "restriction": state.restriction,
            "limit": state.quota,
            "remaining": state.remaining(moment.period),
        }
        for (scope, ident), state in zip(scopes, states, strict=True)
        if state.restriction != UNLIMITED
    ]


def _scopes(token: Row[Any], groups: list[Row[Any]]) -> list[tuple[str, int]]:
    return [("token", token.id)] + [("group", g.id) for g in groups]


def _general(db: Database, hashed: str, check: Check, moment: Moment) -> Decision:
    with db.single() as connection:
        token = _read_token(connection, hashed, prepared=db.hot is not None)
        early = _early_refusal(token, hashed, check.action, moment)
        groups = _limited_groups(connection, token) if token is not None and early is None else []
    if token is None:
        return Decision(allowed=False, code="invalid_token")
    base = Decision(
        allowed=False, code=early or OK, token_id=token.id, kind=token.kind, prefix=token.prefix, owner=token.owner
    )
    states = [state_of(token)] + [state_of(g) for g in groups]
    if early is not None:
        return base
    if check.cost == 0:
        short = next((s for s in states if s.remaining(moment.period) == 0), None)
        limit = binding_limit(states, moment.period, moment.next_month)
        code = short.exhausted_code() if short else OK
        counters = _counters_public(_scopes(token, groups), states, moment)
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
    counters = _counters_public(_scopes(token, groups), spent, moment)
    return replace(base, allowed=True, code=OK, limit=limit, usage_id=usage_id, idempotency=claim, counters=counters)


@retry_once
def decide(db: Database, check: Check, moment: Moment, *, fast_tried: bool = False) -> Decision:
    """The decision for `check` at `moment`; refusals are stored before returning. `fast_tried`:
    the one-statement spend already matched nothing for this check alone (`decide_together`)."""
    if kind_of(check.token) is None:
        # Nothing to look up; counted per client and minute, so a flood of junk is a few rows.
        refusals.record_malformed(
            db, at=moment.now, action=check.action, client_ip=check.client_ip, request_id=check.request_id
        )
        return Decision(allowed=False, code=refusals.MALFORMED_CODE)
    hashed = digest(check.token)
    fast = None
    if fast_path_applies(check) and not fast_tried:
        fast = _fast_spend(db, hashed, check, moment)
    decision = fast or idempotency.retry_on_conflict(lambda: _general(db, hashed, check, moment))
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
