"""Refusals (why a token was turned away), the audit trail, and usage: what the validator recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from token_panel.charts import bar_chart
from token_panel.deps import AdminDep, ApiDep, ZoneDep, require_admin
from token_panel.forms import Invalid, local_instant
from token_panel.web import render

router = APIRouter(dependencies=[Depends(require_admin)])

PER_PAGE = 50
REFUSAL_CODES = (
    "missing_token",
    "invalid_token",
    "token_revoked",
    "token_expired",
    "subject_disabled",
    "action_forbidden",
    "usage_exhausted",
    "monthly_quota_exhausted",
)
Id = Annotated[int, Path(ge=1, le=2**62)]
PageNo = Annotated[int, Query(ge=1, le=10**6)]
Moment = Annotated[str, Query(max_length=40, description="YYYY-MM-DDTHH:MM in the panel's time zone")]
MonthLabel = Annotated[str, Query(pattern=r"^(|\d{4}-(0[1-9]|1[0-2]))$")]


def time_range(since: str, until: str, zone: ZoneInfo) -> tuple[dict[str, datetime | None], dict[str, str]]:
    """`since` / `until` inputs as instants, and what was wrong with them."""
    errors: dict[str, str] = {}
    instants: dict[str, datetime | None] = {}
    for name, value in (("since", since), ("until", until)):
        try:
            instants[name] = local_instant(value, zone, name)
        except Invalid as exc:
            errors.update(exc.errors)
            instants[name] = None
    start, end = instants["since"], instants["until"]
    if start is not None and end is not None and end < start:
        errors["until"] = "The end comes before the start."
    return instants, errors


def iso(instants: dict[str, datetime | None]) -> dict[str, str | None]:
    return {name: (value.isoformat() if value else None) for name, value in instants.items()}


@router.get("/refusals", summary="Refusals, newest first")
async def refusals(
    request: Request,
    admin: AdminDep,
    api: ApiDep,
    zone: ZoneDep,
    token: Annotated[str, Query(max_length=20)] = "",
    code: Annotated[str, Query(max_length=40)] = "",
    since: Moment = "",
    until: Moment = "",
    page: PageNo = 1,
) -> Response:
    token = token.strip()
    filters = {"token": token, "code": code, "since": since, "until": until}
    instants, errors = time_range(since, until, zone)
    params: dict[str, Any] = {"code": code, "page": page, "per_page": PER_PAGE, **iso(instants)}
    params["token_id" if token.isdigit() else "prefix"] = token
    found = None
    if not errors:
        found = await api.call("GET", "/refusals", actor=admin.name, params=params)
    context = {"found": found, "filters": filters, "errors": errors, "codes": REFUSAL_CODES}
    return render(request, "refusals.html", context, status=422 if errors else 200)


@router.get("/audit", summary="The audit trail of admin actions, newest first")
async def audit(
    request: Request,
    admin: AdminDep,
    api: ApiDep,
    zone: ZoneDep,
    actor: Annotated[str, Query(max_length=100)] = "",
    action: Annotated[str, Query(max_length=64)] = "",
    since: Moment = "",
    until: Moment = "",
    page: PageNo = 1,
) -> Response:
    filters = {"actor": actor, "action": action, "since": since, "until": until}
    instants, errors = time_range(since, until, zone)
    found = None
    if not errors:
        params = {"actor": actor, "action": action, "page": page, "per_page": PER_PAGE, **iso(instants)}
        found = await api.call("GET", "/audit", actor=admin.name, params=params)
    context = {"found": found, "filters": filters, "errors": errors}
    return render(request, "audit.html", context, status=422 if errors else 200)


@router.get("/usage", summary="The most used tokens of a month")
async def usage(request: Request, admin: AdminDep, api: ApiDep, month: MonthLabel = "") -> Response:
    summary = await api.call("GET", "/usage", actor=admin.name, params={"month": month, "limit": 50})
    return render(request, "usage.html", {"summary": summary})


@router.get("/tokens/{token_id}/usage", summary="A token's uses per day of a month and per month")
async def token_usage(request: Request, token_id: Id, admin: AdminDep, api: ApiDep, month: MonthLabel = "") -> Response:
    token = await api.call("GET", f"/tokens/{token_id}", actor=admin.name)
    daily = await api.call("GET", f"/tokens/{token_id}/usage", actor=admin.name, params={"month": month})
    monthly = await api.call("GET", f"/tokens/{token_id}/usage/months", actor=admin.name, params={"count": 12})
    days = [(d["day"][-2:], int(d["uses"])) for d in daily["days"]]
    months = [(m["month"], int(m["uses"])) for m in monthly["months"]]
    context = {
        "token": token,
        "daily": daily,
        "monthly": monthly,
        "day_chart": bar_chart(days, label_every=5 if len(days) > 16 else 1),
        "month_chart": bar_chart(months, label_every=2 if len(months) > 6 else 1),
        "previous_month": _shift(daily["month"], -1),
        "next_month": _shift(daily["month"], 1),
    }
    return render(request, "token_usage.html", context)


def _shift(label: str, by: int) -> str:
    year, month = (int(part) for part in label.split("-"))
    index = year * 12 + month - 1 + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"
