"""Group membership (from either side), a group's shared quota and its rate limit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from token_panel.admin_api import ApiError
from token_panel.deps import AdminDep, ApiDep, FormDep, require_admin
from token_panel.forms import text
from token_panel.routes import counters
from token_panel.web import failed, ok, redirect

router = APIRouter(dependencies=[Depends(require_admin)])

Id = Annotated[int, Path(ge=1, le=2**62)]


def _back(form: object, group_id: int, user_id: int) -> str:
    """Where the form was posted from: the user's page or the group's."""
    return f"/users/{user_id}" if text(form, "back") == "user" else f"/groups/{group_id}"


@router.post("/groups/{group_id}/members", summary="Add a user (by name) to a group")
async def add_member(request: Request, group_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    name = text(form, "user")
    user = await api.find_owner("user", name, actor=admin.name) if name else None
    if user is None:
        note = f"There is no user named “{name}”." if name else "Enter the name of a user to add."
        return redirect(request, f"/groups/{group_id}", failed(note))
    await api.call("PUT", f"/groups/{group_id}/members/{user['id']}", actor=admin.name)
    return redirect(request, f"/groups/{group_id}", ok(f"“{user['name']}” is a member now."))


@router.post("/users/{user_id}/groups", summary="Add a user to a group (by name)")
async def join_group(request: Request, user_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    name = text(form, "group")
    group = await api.find_owner("group", name, actor=admin.name) if name else None
    if group is None:
        note = f"There is no group named “{name}”." if name else "Enter the name of a group."
        return redirect(request, f"/users/{user_id}", failed(note))
    await api.call("PUT", f"/groups/{group['id']}/members/{user_id}", actor=admin.name)
    return redirect(request, f"/users/{user_id}", ok(f"Added to group “{group['name']}”."))


@router.post("/groups/{group_id}/members/{user_id}/remove", summary="Take a user out of a group")
async def remove_member(
    request: Request, group_id: Id, user_id: Id, admin: AdminDep, form: FormDep, api: ApiDep
) -> Response:
    try:
        await api.call("DELETE", f"/groups/{group_id}/members/{user_id}", actor=admin.name)
    except ApiError as exc:
        return redirect(request, _back(form, group_id, user_id), failed(exc.detail))
    return redirect(request, _back(form, group_id, user_id), ok("Removed from the group."))


@router.post("/groups/{group_id}/quota", summary="Change a group's shared quota")
async def set_quota(request: Request, group_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    back = f"/groups/{group_id}"
    path = f"/groups/{group_id}/quota"
    return await counters.set_restriction(request, admin, api, form, path=path, back=back, done="The quota is changed.")


@router.post("/groups/{group_id}/rate", summary="Set or remove a group's rate limit")
async def set_rate(request: Request, group_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    path = f"/groups/{group_id}/rate"
    return await counters.set_rate(request, admin, api, form, path=path, back=f"/groups/{group_id}")


@router.post("/groups/{group_id}/quota/grant", summary="Grant a group extra uses for this period")
async def grant_quota(request: Request, group_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    path = f"/groups/{group_id}/quota/remaining"
    return await counters.grant(request, admin, api, form, path=path, back=f"/groups/{group_id}")
