"""Dead letters: each DLQ's messages, and replay or discard, each confirmed on a page of its own
and written into the audit trail with the admin's name and what moved."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from cartero_common.http import from_state
from token_panel.admin_api import ApiError
from token_panel.dead_letters import DeadLetters, Done
from token_panel.deps import AdminDep, ApiDep, FormDep, require_admin
from token_panel.sessions import Flash
from token_panel.web import ok, redirect, render

router = APIRouter(dependencies=[Depends(require_admin)])

QUEUES = ("cola_sms.dlq", "correos.dlq", "logs.dlq")
ACTIONS = ("replay", "discard")
Queue = Annotated[str, Path(pattern=r"^(cola_sms|correos|logs)\.dlq$")]
Action = Annotated[str, Path(pattern=r"^(replay|discard)$")]
Ids = Annotated[list[str], Query(max_length=1000)]
DeadDep = Annotated[DeadLetters, Depends(from_state("dead_letters"))]
# The validator's limits on an audit record (its DeadLetterAction): a replay of more messages, or
# of longer ids, is recorded with the first ids, each cut, the full count and `ids_truncated`.
AUDIT_MAX_IDS = 1000
AUDIT_ID_CHARS = 200
# Ids named in the note after an action: it travels in a cookie, which holds about 4 kB.
SHOWN_IDS = 10
SHOWN_ID_CHARS = 64


async def counts_or_none(dead: DeadLetters) -> dict[str, int] | None:
    """Each DLQ's count; None when the service does not answer (the page says so, never a 500)."""
    try:
        return await dead.counts()
    except Exception:  # noqa: BLE001 - unavailable, whatever the reason
        return None


@router.get("/dead-letters", summary="The dead-letter queues")
async def overview(request: Request, dead: DeadDep) -> Response:
    return render(request, "dead_letters.html", {"counts": await counts_or_none(dead), "queues": QUEUES})


@router.get("/dead-letters/{queue}", summary="One DLQ's messages")
async def listing(request: Request, queue: Queue, dead: DeadDep) -> Response:
    return render(request, "dead_letter_queue.html", {"queue": queue, "messages": await dead.listing(queue)})


@router.get("/dead-letters/{queue}/confirm", summary="Confirm a replay or a discard")
async def confirm(
    request: Request,
    queue: Queue,
    action: Annotated[str, Query(pattern=r"^(replay|discard)$")],
    id: Ids = [],  # noqa: B006 - FastAPI copies query defaults
    all: bool = False,
) -> Response:
    ids = list(dict.fromkeys(i for i in id if i))
    if action == "discard" and all:
        return redirect(request, f"/dead-letters/{queue}", Flash("error", "Discard takes the messages you select."))
    if not all and not ids:
        return redirect(request, f"/dead-letters/{queue}", Flash("error", "Select at least one message."))
    context = {"queue": queue, "action": action, "ids": ids, "all": all}
    return render(request, "dead_letter_confirm.html", context)


def _cut(ids: list[str]) -> tuple[list[str], bool]:
    kept = [i[:AUDIT_ID_CHARS] for i in ids[:AUDIT_MAX_IDS]]
    return kept, len(ids) > AUDIT_MAX_IDS or any(len(i) > AUDIT_ID_CHARS for i in ids[:AUDIT_MAX_IDS])


def audit_record(action: str, queue: str, done: Done, *, every: bool) -> dict[str, Any]:
    """The audit trail's record of what moved, within what the validator accepts whatever the
    size of what was done: an action already done must never fail to be recorded."""
    ids, ids_cut = _cut(done.ids)
    not_found, not_found_cut = _cut(done.not_found)
    return {
        "action": f"dead_letters.{action}",
        "queue": queue,
        "ids": ids,
        "count": len(done.ids),
        "all": every,
        "not_found": not_found,
        "ids_truncated": ids_cut or not_found_cut,
        "unconfirmed": done.stopped is not None,
    }


def _listed(ids: list[str]) -> str:
    shown = ", ".join(i if len(i) <= SHOWN_ID_CHARS else i[:SHOWN_ID_CHARS] + "…" for i in ids[:SHOWN_IDS])
    return shown + (f" and {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")


def _note(action: str, done: Done, asked: list[str]) -> Flash:
    verb = "replayed" if action == "replay" else "discarded"
    if done.stopped is not None:
        text = f"Stopped part-way: {done.stopped} {len(done.ids)} message(s) {verb}"
        text += f" ({_listed(done.ids)})." if done.ids else "."
        if asked:
            moved = set(done.ids)
            text += f" Not replayed: {_listed([i for i in asked if i not in moved])}."
        return Flash("error", text)
    text = f"{len(done.ids)} message(s) {verb}."
    if done.not_found:
        text += f" Not found (already gone): {_listed(done.not_found)}."
    return ok(text)


@router.post("/dead-letters/{queue}/{action}", summary="Replay or discard dead letters")
async def act(
    request: Request, queue: Queue, action: Action, admin: AdminDep, form: FormDep, api: ApiDep, dead: DeadDep
) -> Response:
    every = form.get("all") == "1"
    ids = [str(i) for i in form.getlist("id") if isinstance(i, str) and i][:1000]
    body: dict[str, Any] = {"all": True} if every and action == "replay" else {"ids": ids}
    back = f"/dead-letters/{queue}"
    try:
        done = await dead.act(queue, action, body)
    except ApiError as exc:
        return redirect(request, back, Flash("error", exc.detail))
    await api.call("POST", "/audit", actor=admin.name, json=audit_record(action, queue, done, every=every))
    return redirect(request, back, _note(action, done, [] if every else ids))
