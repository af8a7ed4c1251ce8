"""The fast path: one statement decides and spends.

A conditional UPDATE of the token row carries every check in its WHERE clause (exists, not
revoked, not expired, owner enabled, action allowed, within quota); on PostgreSQL the usage
record is inserted by the same statement. It only applies when no group quota is involved; when
it matches no row (for any reason, a group quota included) it spends nothing, and the general
path (`general`) reads the token and finds out why.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    Engine,
    Integer,
    Row,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from token_validator.counters import (
    MONTHLY,
    UNLIMITED,
    CounterState,
    binding_limit,
    counted_period,
    spend_values,
    state_of,
    within_quota,
)
from token_validator.db import Database, retry_once
from token_validator.models import Application, Group, Membership, Token, Usage, User
from token_validator.moment import Moment
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
    USABLE,
    USAGE_VALUES,
    params,
)
from token_validator.token_strings import ALL_ACTIONS, kind_of

ACTION_PATTERN = bindparam("p_action_pattern", type_=String)
TOTAL = bindparam("p_total", type_=Integer)  # PostgreSQL batch: `cost` times the uses decided together
USAGE_IDS = bindparam("p_usage_ids", type_=ARRAY(String))

LIKE_ESCAPE = "/"


def action_pattern(action: str) -> str:
    """The LIKE pattern finding `action` in `,<actions>,` with wildcards taken literally."""
    escaped = action.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%,{escaped},%"


ACTION_ALLOWED = or_(
    Token.actions == ALL_ACTIONS, (literal(",") + Token.actions + ",").like(ACTION_PATTERN, escape=LIKE_ESCAPE)
)
NO_GROUP_COUNTER = and_(
    ~exists().where(Group.id == Token.group_id, or_(Group.disabled, Group.restriction != UNLIMITED)),
    ~exists().where(
        Membership.user_id == Token.user_id, Group.id == Membership.group_id, Group.restriction != UNLIMITED
    ),
)
OWNER_ENABLED = and_(
    ~exists().where(Application.id == Token.application_id, Application.disabled),
    ~exists().where(User.id == Token.user_id, User.disabled),
)


def _spend_statement(amount: Any) -> Any:
    """Every check of a decision in one WHERE clause, for a token no group quota applies to."""
    return (
        update(Token)
        .where(
            Token.digest == DIGEST,
            USABLE,
            OWNER_ENABLED,
            NO_GROUP_COUNTER,
            ACTION_ALLOWED,
            within_quota(Token, amount, PERIOD),
        )
        .values(**spend_values(Token, amount, PERIOD), last_used_at=NOW)
    )


# SQLite: the spend, then INSERT_USAGE, in one BEGIN IMMEDIATE transaction.
SPEND_RETURNING = _spend_statement(COST).returning(*SPENT, OWNER_NAME.label("owner"), OWNER_ID.label("owner_id"))


def _name_of(application_id: Any, group_id: Any, user_id: Any) -> Any:
    return func.coalesce(
        select(Application.name).where(Application.id == application_id).scalar_subquery(),
        select(Group.name).where(Group.id == group_id).scalar_subquery(),
        select(User.name).where(User.id == user_id).scalar_subquery(),
    )


def _spend_batch_in_one_statement() -> Any:
    """PostgreSQL: spend `p_total` (one or more uses decided together, see `batcher`) and record
    a usage of `p_cost` for each id of `p_usage_ids`, in a single statement (one round trip, one
    row lock). It matches no row, and so spends nothing, unless the whole total fits."""
    spent = _spend_statement(TOTAL).returning(*SPENT, Token.application_id, Token.group_id, Token.user_id).cte("spent")
    usage_id = func.unnest(USAGE_IDS).column_valued("usage_id")
    # The month the uses count in: a monthly counter's after the spend (`counters.counted_period`).
    counted = case((spent.c.restriction == MONTHLY, spent.c.period), else_=PERIOD)
    values = {**USAGE_VALUES, "period": counted}
    logged = insert(Usage).from_select(["id", "token_id", *values], select(usage_id, spent.c.id, *values.values()))
    owner = _name_of(spent.c.application_id, spent.c.group_id, spent.c.user_id)
    owner_id = func.coalesce(spent.c.application_id, spent.c.group_id, spent.c.user_id)
    return select(*(spent.c[c.key] for c in SPENT), owner.label("owner"), owner_id.label("owner_id")).add_cte(
        logged.cte("logged")
    )


SPEND_BATCH = _spend_batch_in_one_statement()
SPEND_BATCH_PREPARED = prepare("cartero_fast_spend", SPEND_BATCH)


def applies(check: Check) -> bool:
    """Whether the one-statement spend may decide `check` (no group quota is known before it runs;
    a token with one simply matches no row there)."""
    return check.cost > 0 and check.idempotency is None and kind_of(check.token) is not None


def _params(check: Check, moment: Moment, **extra: Any) -> dict[str, Any]:
    return params(check, moment, action_pattern=action_pattern(check.action), **extra)


def spend(db: Database, hashed: str, check: Check, moment: Moment) -> Decision | None:
    """`check` allowed and spent in one statement, or None (nothing spent: the general path decides)."""
    if db.hot is not None:
        decisions = _spend_in_one_statement(db.hot, hashed, [check], moment)
        return decisions[0] if decisions else None
    usage_id = uuid.uuid4().hex
    values = _params(check, moment, digest=hashed, usage_id=usage_id, group_ids="")
    with db.engine.begin() as connection:
        row = connection.execute(SPEND_RETURNING, values).one_or_none()
        if row is not None:
            counted = counted_period([state_of(row)], moment.period)
            connection.execute(INSERT_USAGE, {**values, "p_token_id": row.id, "p_period": counted})
    if row is None:
        return None
    return _allowed(row, state_of(row), usage_id, moment)


@retry_once
def spend_together(db: Database, hashed: str, checks: Sequence[Check], moment: Moment) -> Sequence[Decision | None]:
    """The fast-path decisions of `checks` (one token, action and cost; see `batcher`): all of
    them in one statement when the total fits, else each in its own. None for a check the fast
    path cannot allow alone: the general path finds out why."""
    if db.hot is None:
        raise ValueError("deciding together needs PostgreSQL's hot-path engine")
    together = _spend_in_one_statement(db.hot, hashed, checks, moment)
    if together is not None:
        return together
    if len(checks) == 1:
        return [None]
    alone = (_spend_in_one_statement(db.hot, hashed, [check], moment) for check in checks)
    return [decisions[0] if decisions else None for decisions in alone]


def _spend_in_one_statement(hot: Engine, hashed: str, checks: Sequence[Check], moment: Moment) -> list[Decision] | None:
    """PostgreSQL: allow every check of `checks` (one token, one action, one cost) in one prepared,
    autocommitted statement, or none of them."""
    first = checks[0]
    usage_ids = [uuid.uuid4().hex for _ in checks]
    values = _params(first, moment, digest=hashed, usage_ids=usage_ids, group_ids="", total=first.cost * len(checks))
    with hot.connect() as connection:
        row = SPEND_BATCH_PREPARED.run(connection, values)
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
        owner_id=row.owner_id,
        limit=binding_limit([counter], moment.period, moment.next_month),
        usage_id=usage_id,
        counters=counters_public([("token", row.id)], [counter], moment),
    )
