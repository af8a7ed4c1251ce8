"""The message log: events by queue, kind and time, and one message's timeline."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response

from token_panel.deps import AdminDep, ClockDep, LogDep, ZoneDep, require_admin
from token_panel.message_log import EVENTS, QUEUES, page_of
from token_panel.routes.records import Moment, time_range
from token_panel.web import as_input, render

router = APIRouter(dependencies=[Depends(require_admin)])

PER_PAGE = 100
# consumer_logs serves the oldest events first, so a page is fetched from `since`; some slack
# for the events an earlier page already showed (the same `stored_at`).
FETCH = 2 * PER_PAGE + 1
DEFAULT_WINDOW = timedelta(hours=24)


@router.get("/messages", summary="Search the message log")
async def messages(
    request: Request,
    _: AdminDep,
    log: LogDep,
    zone: ZoneDep,
    clock: ClockDep,
    id: Annotated[str, Query(max_length=200)] = "",
    cola: Annotated[str, Query(max_length=200)] = "",
    evento: Annotated[str, Query(max_length=40)] = "",
    since: Moment = "",
    until: Moment = "",
    after: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    message_id = id.strip()
    if message_id:
        timeline = await log.events(message_id=message_id, limit=1000)
        return render(request, "message.html", {"message_id": message_id, "events": timeline})
    if not since:
        since = as_input(clock() - DEFAULT_WINDOW, zone)
    filters = {"id": "", "cola": cola, "evento": evento, "since": since, "until": until}
    instants, errors = time_range(since, until, zone)
    page = None
    if not errors:
        fetched = await log.events(evento=evento or None, cola=cola or None, since=instants["since"], limit=FETCH)
        page = page_of(fetched, fetched_limit=FETCH, per_page=PER_PAGE, after=after, until=instants["until"])
    later = None
    if page is not None and page.next_since is not None:
        later = {**filters, "since": local_text(page.next_since, zone), "after": page.next_after}
    context = {"filters": filters, "errors": errors, "page": page, "later": later, "queues": QUEUES, "events": EVENTS}
    return render(request, "messages.html", context, status=422 if errors else 200)


def local_text(value: datetime, zone: ZoneInfo) -> str:
    """Wall time to the millisecond (what a `datetime-local` input holds); `after` skips the rest."""
    return value.astimezone(zone).replace(tzinfo=None).isoformat(timespec="milliseconds")
