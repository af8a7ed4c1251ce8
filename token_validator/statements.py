"""The statements of `/v1/validate`, built once with bound parameters.

Building a SQLAlchemy expression and its cache key costs more Python time than PostgreSQL takes
to run it, so the hot path reuses these objects and only binds values (`p_<name>`: a bound
parameter named like a column would be taken for that column's new value in an UPDATE).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from token_validator.models import Application, Group, Membership, Token, Usage, User
from token_validator.prepared import prepare
from token_validator.quota import UNLIMITED, spend_values, within_quota
from token_validator.tokens import ALL_ACTIONS

DIGEST = bindparam("p_digest", type_=String)
NOW = bindparam("p_now", type_=DateTime(timezone=True))
COST = bindparam("p_cost", type_=Integer)
PERIOD = bindparam("p_period", type_=Integer)
DAY = bindparam("p_day", type_=String)
ACTION_PATTERN = bindparam("p_action_pattern", type_=String)
USAGE_ID = bindparam("p_usage_id", type_=String)
TOKEN_ID = bindparam("p_token_id", type_=Integer)
GROUP_ID = bindparam("p_group_id", type_=Integer)
USER_ID = bindparam("p_user_id", type_=Integer)
GROUP_IDS = bindparam("p_group_ids", type_=String)
TOTAL = bindparam("p_total", type_=Integer)  # PostgreSQL batch: `cost` times the uses decided together
USAGE_IDS = bindparam("p_usage_ids", type_=ARRAY(String))

LIKE_ESCAPE = "/"


def action_pattern(action: str) -> str:
    """The LIKE pattern finding `action` in `,<actions>,` with wildcards taken literally."""
    escaped = action.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%,{escaped},%"


def _name_of(application_id: Any, group_id: Any, user_id: Any) -> Any:
    return func.coalesce(
        select(Application.name).where(Application.id == application_id).scalar_subquery(),
        select(Group.name).where(Group.id == group_id).scalar_subquery(),
        select(User.name).where(User.id == user_id).scalar_subquery(),
    )


def _correlated(query: Any) -> Any:
    return query.correlate(Token).scalar_subquery()


OWNER_NAME = func.coalesce(
    _correlated(select(Application.name).where(Application.id == Token.application_id)),
    _correlated(select(Group.name).where(Group.id == Token.group_id)),
    _correlated(select(User.name).where(User.id == Token.user_id)),
)
OWNER_DISABLED = func.coalesce(
    _correlated(select(Application.disabled).where(Application.id == Token.application_id)),
    _correlated(select(Group.disabled).where(Group.id == Token.group_id)),
    _correlated(select(User.disabled).where(User.id == Token.user_id)),
)
USABLE = and_(Token.revoked_at.is_(None), or_(Token.expires_at.is_(None), Token.expires_at > NOW))
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

SPENT = (Token.id, Token.kind, Token.prefix, Token.restriction, Token.quota, Token.used, Token.period)
COUNTER_OF_TOKEN = (Token.restriction, Token.quota, Token.used, Token.period)
COUNTER_OF_GROUP = (Group.restriction, Group.quota, Group.used, Group.period)


def _fast_spend(amount: Any) -> Any:
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


USAGE_VALUES = {"cost": COST, "spent_at": NOW, "day": DAY, "period": PERIOD, "group_ids": GROUP_IDS}
INSERT_USAGE = insert(Usage).values(id=USAGE_ID, token_id=TOKEN_ID, **USAGE_VALUES)

# SQLite: the spend, then INSERT_USAGE, in one BEGIN IMMEDIATE transaction.
FAST_SPEND_RETURNING = _fast_spend(COST).returning(*SPENT, OWNER_NAME.label("owner"))


def _fast_spend_batch_in_one_statement() -> Any:
    """PostgreSQL: spend `p_total` (one or more uses decided together, see `batching`) and record
    a usage of `p_cost` for each id of `p_usage_ids`, in a single statement (one round trip, one
    row lock). It matches no row, and so spends nothing, unless the whole total fits."""
    spent = _fast_spend(TOTAL).returning(*SPENT, Token.application_id, Token.group_id, Token.user_id).cte("spent")
    usage_id = func.unnest(USAGE_IDS).column_valued("usage_id")
    logged = insert(Usage).from_select(
        ["id", "token_id", *USAGE_VALUES], select(usage_id, spent.c.id, *USAGE_VALUES.values())
    )
    owner = _name_of(spent.c.application_id, spent.c.group_id, spent.c.user_id)
    return select(*(spent.c[c.key] for c in SPENT), owner.label("owner")).add_cte(logged.cte("logged"))


FAST_SPEND_BATCH = _fast_spend_batch_in_one_statement()

READ_TOKEN = select(
    *SPENT,
    Token.digest,
    Token.actions,
    Token.expires_at,
    Token.revoked_at,
    Token.group_id,
    Token.user_id,
    OWNER_NAME.label("owner"),
    OWNER_DISABLED.label("owner_disabled"),
).where(Token.digest == DIGEST)

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

PREPARED = {
    "fast_spend": prepare("cartero_fast_spend", FAST_SPEND_BATCH),
    "read_token": prepare("cartero_read_token", READ_TOKEN),
}
