"""One decision about one presented token (`POST /v1/validate`).

Checks in the DESIGN's order: exists → revoked → expired → owner disabled → action → quota; a
refusal earlier in the list spends nothing, and every refusal is stored.

The hot path is one statement: a conditional UPDATE of the token row that carries every check in
its WHERE clause (on PostgreSQL, with the usage record inserted by the same statement). It only
applies when no group quota is involved; when it matches no row, the general path reads the
token, finds out why, and spends counter by counter in one transaction.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, exists, func, insert, literal, or_, select, update

from token_validator import idempotency, refusals
from token_validator.db import is_postgres, retry_once
from token_validator.idempotency import Claim, IdempotencyRequest
from token_validator.models import Application, Group, Membership, Token, Usage, User
from token_validator.moment import Moment, as_utc
from token_validator.quota import (
    UNLIMITED,
    CounterState,
    Limit,
    binding_limit,
    spend_values,
    state_of,
    within_quota,
)
from token_validator.tokens import ALL_ACTIONS, allows, digest, kind_of, presented_prefix

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


def _owner_name() -> Any:
    return func.coalesce(
        select(Application.name).where(Application.id == Token.application_id).correlate(Token).scalar_subquery(),
        select(Group.name).where(Group.id == Token.group_id).correlate(Token).scalar_subquery(),
        select(User.name).where(User.id == Token.user_id).correlate(Token).scalar_subquery(),
    )


def _owner_disabled() -> Any:
    return func.coalesce(
        select(Application.disabled).where(Application.id == Token.application_id).correlate(Token).scalar_subquery(),
        select(Group.disabled).where(Group.id == Token.group_id).correlate(Token).scalar_subquery(),
        select(User.disabled).where(User.id == Token.user_id).correlate(Token).scalar_subquery(),
    )


def _action_allowed(action: str) -> Any:
    return or_(
        Token.actions == ALL_ACTIONS, (literal(",") + Token.actions + ",").contains(f",{action},", autoescape=True)
    )


def _usable(moment: Moment) -> Any:
    return and_(Token.revoked_at.is_(None), or_(Token.expires_at.is_(None), Token.expires_at > moment.now))


def _fast_conditions(hashed: str, action: str, cost: int, moment: Moment) -> Any:
    """Every check of a decision, for a token no group quota applies to."""
    return and_(
        Token.digest == hashed,
        _usable(moment),
        ~exists().where(Application.id == Token.application_id, Application.disabled),
        ~exists().where(User.id == Token.user_id, User.disabled),
        ~exists().where(Group.id == Token.group_id, or_(Group.disabled, Group.restriction != UNLIMITED)),
        ~exists().where(
            Membership.user_id == Token.user_id, Group.id == Membership.group_id, Group.restriction != UNLIMITED
        ),
        _action_allowed(action),
        within_quota(Token, cost, moment.period),
    )


_SPENT = (Token.id, Token.kind, Token.prefix, Token.restriction, Token.quota, Token.used, Token.period)


def _fast_spend(engine: Engine, hashed: str, check: Check, moment: Moment) -> Decision | None:
    usage_id = uuid.uuid4().hex
    spend = (
        update(Token)
        .where(_fast_conditions(hashed, check.action, check.cost, moment))
        .values(**spend_values(Token, check.cost, moment.period), last_used_at=moment.now)
    )
    usage = {"cost": check.cost, "spent_at": moment.now, "day": moment.day, "period": moment.period, "group_ids": ""}
    if is_postgres(engine):
        # One round trip: spend and record the usage in a single autocommitted statement.
        spent = spend.returning(*_SPENT, Token.application_id, Token.group_id, Token.user_id).cte("spent")
        logged = insert(Usage).from_select(
            ["id", "token_id", *usage],
            select(literal(usage_id), spent.c.id, *(literal(v) for v in usage.values())),
        )
        owner = func.coalesce(
            select(Application.name).where(Application.id == spent.c.application_id).scalar_subquery(),
            select(Group.name).where(Group.id == spent.c.group_id).scalar_subquery(),
            select(User.name).where(User.id == spent.c.user_id).scalar_subquery(),
        )
        statement = select(*(spent.c[c.key] for c in _SPENT), owner.label("owner")).add_cte(logged.cte("logged"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            row = connection.execute(statement).one_or_none()
    else:
        with engine.begin() as connection:
            row = connection.execute(spend.returning(*_SPENT, _owner_name().label("owner"))).one_or_none()
            if row is not None:
                connection.execute(insert(Usage).values(id=usage_id, token_id=row.id, **usage))
    if row is None:
        return None
    counter = state_of(row)
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


def _read_token(connection: Connection, hashed: str) -> Row[Any] | None:
    columns = (
        *_SPENT,
        Token.digest,
        Token.actions,
        Token.expires_at,
        Token.revoked_at,
        Token.group_id,
        Token.user_id,
        _owner_name().label("owner"),
        _owner_disabled().label("owner_disabled"),
    )
    return connection.execute(select(*columns).where(Token.digest == hashed)).one_or_none()


def _limited_groups(connection: Connection, token: Row[Any]) -> list[Row[Any]]:
    columns = (Group.id, Group.restriction, Group.quota, Group.used, Group.period)
    if token.kind == "group":
        query = select(*columns).where(Group.id == token.group_id)
    elif token.kind == "user":
        query = (
            select(*columns)
            .join(Membership, Membership.group_id == Group.id)
            .where(Membership.user_id == token.user_id)
        )
    else:
        return []
    # Ascending ids: every spender locks counters in the same order, so none can deadlock.
    return list(connection.execute(query.where(Group.restriction != UNLIMITED).order_by(Group.id)))


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
    spent_token = connection.execute(
        update(Token)
        .where(Token.id == token.id, _usable(moment), within_quota(Token, check.cost, moment.period))
        .values(**spend_values(Token, check.cost, moment.period), last_used_at=moment.now)
        .returning(Token.restriction, Token.quota, Token.used, Token.period)
    ).one_or_none()
    if spent_token is None:
        again = _read_token(connection, token.digest)
        code = _early_refusal(again, token.digest, check.action, moment)
        current = state_of(again) if again is not None else None
        raise _Refused(code or (current.exhausted_code() if current else "invalid_token"), current)
    counters = [state_of(spent_token)]
    for group in groups:
        spent_group = connection.execute(
            update(Group)
            .where(Group.id == group.id, within_quota(Group, check.cost, moment.period))
            .values(**spend_values(Group, check.cost, moment.period))
            .returning(Group.restriction, Group.quota, Group.used, Group.period)
        ).one_or_none()
        if spent_group is None:
            current = state_of(connection.execute(select(Group).where(Group.id == group.id)).scalar_one())
            raise _Refused(current.exhausted_code(), current)
        counters.append(state_of(spent_group))
    connection.execute(
        insert(Usage).values(
            id=usage_id,
            token_id=token.id,
            cost=check.cost,
            spent_at=moment.now,
            day=moment.day,
            period=moment.period,
            group_ids=",".join(str(g.id) for g in groups),
        )
    )
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


def _general(engine: Engine, hashed: str, check: Check, moment: Moment) -> Decision:
    with engine.begin() as connection:
        token = _read_token(connection, hashed)
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
        with engine.begin() as connection:
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
def decide(engine: Engine, check: Check, moment: Moment) -> Decision:
    """The decision for `check` at `moment`; refusals are stored before returning."""
    if kind_of(check.token) is None:
        decision = Decision(allowed=False, code="invalid_token")
    else:
        hashed = digest(check.token)
        fast = None
        if check.cost > 0 and check.idempotency is None:
            fast = _fast_spend(engine, hashed, check, moment)
        decision = fast or idempotency.retry_on_conflict(lambda: _general(engine, hashed, check, moment))
    if not decision.allowed and decision.idempotency is None:
        refusals.record(
            engine,
            at=moment.now,
            token_id=decision.token_id,
            prefix=decision.prefix or presented_prefix(check.token),
            action=check.action,
            code=decision.code,
            client_ip=check.client_ip,
            request_id=check.request_id,
        )
    return decision
