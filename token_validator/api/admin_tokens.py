"""Admin API: tokens (create → plaintext once, revoke, restrict, top up) and their usage."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from cartero_common.http import Problem
from token_validator import usage
from token_validator.api.common import Id, audited, paged
from token_validator.deps import AdminDep, DbDep, EngineDep, MomentDep, ZoneDep
from token_validator.issuing import issue
from token_validator.models import Token
from token_validator.moment import Moment
from token_validator.months import Month, last_months, month_of
from token_validator.repository import rates as rate_repo
from token_validator.repository import tokens as token_repo
from token_validator.repository.tokens import TokenFilter
from token_validator.schemas import (
    DailyUsage,
    MonthlyUsage,
    Page,
    RateChange,
    RemainingChange,
    RestrictionIn,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    TokenUses,
    UsageDay,
    UsageMonth,
    UsageSummary,
)
from token_validator.token_strings import Kind
from token_validator.views import token_public

router = APIRouter(tags=["admin: tokens"])

MonthLabel = Annotated[
    str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM in TIMEZONE; the current month if omitted.")
]


def _found(session: Session, token_id: int) -> tuple[Token, str]:
    found = token_repo.get(session, token_id)
    if found is None:
        raise Problem(404, "not_found", f"No token with id {token_id}.")
    return found


def _public(session: Session, token_id: int, moment: Moment, zone: ZoneInfo) -> TokenPublic:
    session.expire_all()
    token, owner = _found(session, token_id)
    return token_public(token, owner, moment, zone, rate_repo.get(session, "token", token_id))


def _month(label: str | None, moment: Moment, zone: ZoneInfo) -> Month:
    if label is None:
        return month_of(moment.now, zone)
    try:
        return Month.parse(label)
    except ValueError as exc:
        raise Problem(422, "invalid_request", f"month: {exc}.") from None


def _aware(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    return (value.replace(tzinfo=zone) if value.tzinfo is None else value).astimezone(UTC)


@router.get("/tokens", response_model=Page[TokenPublic], summary="List tokens, newest first")
def list_tokens(
    _: AdminDep,
    db: DbDep,
    moment: MomentDep,
    zone: ZoneDep,
    kind: Kind | None = None,
    owner_id: Annotated[int | None, Query(ge=1, le=2**62, description="With `kind`: that owner's tokens.")] = None,
    status: Literal["active", "revoked", "expired"] | None = None,
    q: Annotated[str | None, Query(max_length=100, description="Substring of the prefix or the name.")] = None,
    page: Annotated[int, Query(ge=1, le=10**6)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    if owner_id is not None and kind is None:
        raise Problem(422, "invalid_request", "owner_id needs kind (application, group or user).")
    where = TokenFilter(kind=kind, status=status, owner_id=owner_id, q=q)
    with db.begin() as session:
        found = token_repo.list_tokens(session, where, now=moment.now, page=page, per_page=per_page)
        rates = rate_repo.of_many(session, "token", [row[0].id for row in found.items])
        items = [token_public(row[0], row[1], moment, zone, rates.get(row[0].id)) for row in found.items]
    return paged(found, items)


@router.post(
    "/tokens", status_code=201, response_model=TokenCreated, summary="Create a token; its value is shown only here"
)
def create_token(body: TokenCreate, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    expires_at = _aware(body.expires_at, zone)
    if expires_at is not None and expires_at <= moment.now:
        raise Problem(
            422,
            "invalid_request",
            "expires_at is in the past.",
            errors=[{"field": "expires_at", "message": "must be in the future"}],
        )
    with db.begin() as session:
        if not token_repo.owner_exists(session, body.kind, body.owner_id):
            raise Problem(
                422,
                "invalid_request",
                f"There is no {body.kind} with id {body.owner_id}.",
                errors=[{"field": "owner_id", "message": f"no such {body.kind}"}],
            )
        plaintext, token = issue(
            session,
            kind=body.kind,
            owner_id=body.owner_id,
            actions=",".join(body.actions),
            restriction=body.restriction.type,
            quota=body.restriction.limit,
            expires_at=expires_at,
            name=body.name,
            actor=actor.name,
            client_ip=actor.client_ip,
            moment=moment,
        )
        if body.rate is not None:
            rate_repo.set_rate(session, "token", token.id, (body.rate.limit, body.rate.per))
            audited(
                session,
                actor,
                moment,
                "token.rate",
                "token",
                token.id,
                {"prefix": token.prefix, "rate": body.rate.model_dump()},
            )
        public = _public(session, token.id, moment, zone)
    return TokenCreated(**public.model_dump(), token=plaintext)


@router.get("/tokens/{token_id}", response_model=TokenPublic, summary="One token")
def get_token(token_id: Id, _: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    with db.begin() as session:
        return _public(session, token_id, moment, zone)


@router.post("/tokens/{token_id}/revoke", response_model=TokenPublic, summary="Revoke a token (for good)")
def revoke_token(token_id: Id, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep) -> Any:
    with db.begin() as session:
        token, _ = _found(session, token_id)
        if token_repo.revoke(session, token_id, moment.now):
            audited(session, actor, moment, "token.revoke", "token", token_id, {"prefix": token.prefix})
        return _public(session, token_id, moment, zone)


@router.put("/tokens/{token_id}/restriction", response_model=TokenPublic, summary="Change a token's restriction")
def set_restriction(
    token_id: Id, body: RestrictionIn, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep
) -> Any:
    with db.begin() as session:
        token, _ = _found(session, token_id)
        token_repo.set_restriction(session, Token, token_id, body.type, body.limit)
        audited(
            session,
            actor,
            moment,
            "token.restriction",
            "token",
            token_id,
            {"prefix": token.prefix, **body.model_dump()},
        )
        return _public(session, token_id, moment, zone)


@router.put(
    "/tokens/{token_id}/rate",
    response_model=TokenPublic,
    summary="Set a token's rate limit (uses per second or minute), or take it away with null",
)
def set_rate(
    token_id: Id, body: RateChange, request: Request, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep
) -> Any:
    rate = None if body.rate is None else (body.rate.limit, body.rate.per)
    with db.begin() as session:
        token, _ = _found(session, token_id)
        rate_repo.set_rate(session, "token", token_id, rate)
        details = {"prefix": token.prefix, "rate": None if body.rate is None else body.rate.model_dump()}
        audited(session, actor, moment, "token.rate", "token", token_id, details)
        public = _public(session, token_id, moment, zone)
    request.app.state.rates.forget()
    return public


@router.post(
    "/tokens/{token_id}/remaining",
    response_model=TokenPublic,
    summary="Set or grant remaining uses in the current period (409 not_limited for unlimited tokens)",
)
def change_remaining(
    token_id: Id, body: RemainingChange, actor: AdminDep, db: DbDep, moment: MomentDep, zone: ZoneDep
) -> Any:
    with db.begin() as session:
        token, _ = _found(session, token_id)
        if token.restriction == "unlimited":
            raise Problem(409, "not_limited", "The token is unlimited; change its restriction first.")
        token_repo.change_remaining(session, Token, token_id, set_to=body.set, grant=body.grant, period=moment.period)
        audited(
            session,
            actor,
            moment,
            "token.remaining",
            "token",
            token_id,
            {"prefix": token.prefix, **body.model_dump(exclude_none=True)},
        )
        return _public(session, token_id, moment, zone)


@router.get("/tokens/{token_id}/usage", response_model=DailyUsage, summary="Uses per day of a month")
def daily_usage(
    token_id: Id, _: AdminDep, db: DbDep, engine: EngineDep, moment: MomentDep, zone: ZoneDep, month: MonthLabel = None
) -> Any:
    chosen = _month(month, moment, zone)
    with db.begin() as session:
        _found(session, token_id)
    days = usage.daily(engine, token_id, chosen)
    return DailyUsage(
        token_id=token_id,
        month=chosen.label,
        total=sum(uses for _, uses in days),
        days=[UsageDay(day=day, uses=uses) for day, uses in days],
    )


@router.get("/tokens/{token_id}/usage/months", response_model=MonthlyUsage, summary="Uses per month, oldest first")
def monthly_usage(
    token_id: Id,
    _: AdminDep,
    db: DbDep,
    engine: EngineDep,
    moment: MomentDep,
    zone: ZoneDep,
    count: Annotated[int, Query(ge=1, le=36, description="How many months, ending with the current one.")] = 12,
) -> Any:
    with db.begin() as session:
        _found(session, token_id)
    months = usage.monthly(engine, token_id, last_months(moment.now, zone, count))
    return MonthlyUsage(token_id=token_id, months=[UsageMonth(month=m, uses=u) for m, u in months])


@router.get("/usage", response_model=UsageSummary, summary="The most used tokens of a month")
def usage_summary(
    _: AdminDep,
    db: DbDep,
    engine: EngineDep,
    moment: MomentDep,
    zone: ZoneDep,
    month: MonthLabel = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> Any:
    chosen = _month(month, moment, zone)
    top = usage.top_tokens(engine, chosen, limit)
    with db.begin() as session:
        prefixes = {t: (found[0].prefix if (found := token_repo.get(session, t)) else None) for t, _ in top}
    return UsageSummary(month=chosen.label, tokens=[TokenUses(token_id=t, prefix=prefixes[t], uses=u) for t, u in top])
