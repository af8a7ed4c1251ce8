"""The front page: how many owners and tokens there are, the most used tokens, the latest refusals."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request, Response

from token_panel.deps import AdminDep, ApiDep, require_admin
from token_panel.routes.dead_letters import DeadDep, counts_or_none
from token_panel.web import render

router = APIRouter(dependencies=[Depends(require_admin)])

COUNTED = ("applications", "groups", "users", "tokens")


@router.get("/", summary="Overview")
async def overview(request: Request, admin: AdminDep, api: ApiDep, dead: DeadDep) -> Response:
    one = {"per_page": 1}
    *totals, usage, refusals, dead_letters = await asyncio.gather(
        *(api.call("GET", f"/{what}", actor=admin.name, params=one) for what in COUNTED),
        api.call("GET", "/usage", actor=admin.name, params={"limit": 5}),
        api.call("GET", "/refusals", actor=admin.name, params={"per_page": 5}),
        counts_or_none(dead),
    )
    counts = {what: page["total"] for what, page in zip(COUNTED, totals, strict=True)}
    context = {"counts": counts, "usage": usage, "refusals": refusals["items"], "dead_letters": dead_letters}
    return render(request, "home.html", context)
