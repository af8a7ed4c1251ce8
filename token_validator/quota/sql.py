"""What the statements of both paths share, built once with bound parameters.

Building a SQLAlchemy expression and its cache key costs more Python time than PostgreSQL takes
to run it, so the hot path reuses these objects and only binds values (`p_<name>`: a bound
parameter named like a column would be taken for that column's new value in an UPDATE). Each
statement lives next to the code that runs it (`fast`, `general`); this is what they have in
common: the parameters, a token's usable and owner conditions, the columns a spend returns and
the usage it records.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, Integer, String, and_, bindparam, func, insert, or_, select

from token_validator.models import Application, Group, Token, Usage, User
from token_validator.moment import Moment
from token_validator.quota.check import Check

DIGEST = bindparam("p_digest", type_=String)
NOW = bindparam("p_now", type_=DateTime(timezone=True))
COST = bindparam("p_cost", type_=Integer)
PERIOD = bindparam("p_period", type_=Integer)
DAY = bindparam("p_day", type_=String)
USAGE_ID = bindparam("p_usage_id", type_=String)
TOKEN_ID = bindparam("p_token_id", type_=Integer)
GROUP_IDS = bindparam("p_group_ids", type_=String)


def params(check: Check, moment: Moment, **extra: Any) -> dict[str, Any]:
    """Values for the bound parameters (`p_<name>`)."""
    values = {"now": moment.now, "cost": check.cost, "period": moment.period, "day": moment.day, **extra}
    return {f"p_{name}": value for name, value in values.items()}


def correlated(query: Any) -> Any:
    return query.correlate(Token).scalar_subquery()


OWNER_NAME = func.coalesce(
    correlated(select(Application.name).where(Application.id == Token.application_id)),
    correlated(select(Group.name).where(Group.id == Token.group_id)),
    correlated(select(User.name).where(User.id == Token.user_id)),
)
# Exactly one of the three is set (the `one_owner` constraint); the kind says which table it is of.
OWNER_ID = func.coalesce(Token.application_id, Token.group_id, Token.user_id)
USABLE = and_(Token.revoked_at.is_(None), or_(Token.expires_at.is_(None), Token.expires_at > NOW))
SPENT = (Token.id, Token.kind, Token.prefix, Token.restriction, Token.quota, Token.used, Token.period)

USAGE_VALUES = {"cost": COST, "spent_at": NOW, "day": DAY, "period": PERIOD, "group_ids": GROUP_IDS}
INSERT_USAGE = insert(Usage).values(id=USAGE_ID, token_id=TOKEN_ID, **USAGE_VALUES)
