"""Applications, groups and users: list, create, rename, disable/enable, delete, membership."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from token_panel.admin_api import PLURAL, AdminApi, ApiError
from token_panel.deps import Admin, AdminDep, ApiDep, FormDep, require_admin
from token_panel.forms import Invalid, owner_name, restriction, text
from token_panel.web import failed, ok, redirect, render

router = APIRouter(dependencies=[Depends(require_admin)])

PER_PAGE = 20
Id = Annotated[int, Path(ge=1, le=2**62)]
PageNo = Annotated[int, Query(ge=1, le=10**6)]
Search = Annotated[str, Query(max_length=100)]
Status = Annotated[str, Query(pattern="^(|active|disabled)$")]
TITLES = {"application": "Applications", "group": "User groups", "user": "Users"}


async def _list_page(
    request: Request,
    admin: Admin,
    api: AdminApi,
    kind: str,
    *,
    filters: dict[str, Any],
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    disabled = {"active": False, "disabled": True}.get(filters["status"])
    params = {"q": filters["q"], "disabled": disabled, "page": filters["page"], "per_page": PER_PAGE}
    found = await api.call("GET", f"/{PLURAL[kind]}", actor=admin.name, params=params)
    context = {
        "kind": kind,
        "plural": PLURAL[kind],
        "title": TITLES[kind],
        "found": found,
        "filters": filters,
        "typed": typed or {},
        "errors": errors or {},
    }
    return render(request, "owners.html", context, status=status)


async def _create(request: Request, admin: Admin, api: AdminApi, kind: str, form: Any) -> Response:
    typed = {key: text(form, key) for key in ("name", "group", "restriction", "limit")}
    body: dict[str, Any] = {}
    errors: dict[str, str] = {}
    try:
        body["name"] = owner_name(typed["name"])
    except Invalid as exc:
        errors.update(exc.errors)
    if kind == "group":
        try:
            body["quota"] = restriction(typed["restriction"] or "unlimited", typed["limit"])
        except Invalid as exc:
            errors.update(exc.errors)
    group = None
    if kind == "user" and typed["group"]:
        group = await api.find_owner("group", typed["group"], actor=admin.name)
        if group is None:
            errors["group"] = "There is no group with this name; create it first or leave this empty."
    if not errors:
        try:
            created = await api.call("POST", f"/{PLURAL[kind]}", actor=admin.name, json=body)
        except ApiError as exc:
            errors = exc.field_errors() or {"name": exc.detail}
        else:
            note = f"Created {kind} “{created['name']}”."
            if group is not None:
                await api.call("PUT", f"/groups/{group['id']}/members/{created['id']}", actor=admin.name)
                note = f"Created user “{created['name']}” in group “{group['name']}”."
            return redirect(request, f"/{PLURAL[kind]}/{created['id']}", ok(note))
    filters = {"q": "", "status": "", "page": 1}
    return await _list_page(request, admin, api, kind, filters=filters, typed=typed, errors=errors, status=422)


async def _detail(
    request: Request, admin: Admin, api: AdminApi, kind: str, owner_id: int, members_page: int = 1, **context: Any
) -> Response:
    owner = await api.call("GET", f"/{PLURAL[kind]}/{owner_id}", actor=admin.name)
    params = {"kind": kind, "owner_id": owner_id, "per_page": 50}
    owned = await api.call("GET", "/tokens", actor=admin.name, params=params)
    members = None
    if kind == "group":
        members = await api.call(
            "GET", f"/groups/{owner_id}/members", actor=admin.name, params={"page": members_page, "per_page": 50}
        )
    hooks = await api.call("GET", "/webhooks", actor=admin.name, params={"owner_type": kind, "owner_id": owner_id})
    status = context.pop("status", 200)
    page = {
        "kind": kind,
        "plural": PLURAL[kind],
        "owner": owner,
        "tokens": owned,
        "members": members,
        "webhooks": hooks["items"],
        "typed": {},
    }
    return render(request, "owner.html", {**page, **context}, status=status)


async def _rename(request: Request, admin: Admin, api: AdminApi, kind: str, owner_id: int, form: Any) -> Response:
    plural = PLURAL[kind]
    typed = {"name": text(form, "name")}
    try:
        body = {"name": owner_name(typed["name"])}
        renamed = await api.call("PATCH", f"/{plural}/{owner_id}", actor=admin.name, json=body)
    except Invalid as exc:
        return await _detail(request, admin, api, kind, owner_id, errors=exc.errors, typed=typed, status=422)
    except ApiError as exc:
        if exc.status == 404:
            raise
        errors = exc.field_errors() or {"name": exc.detail}
        return await _detail(request, admin, api, kind, owner_id, errors=errors, typed=typed, status=422)
    return redirect(request, f"/{plural}/{owner_id}", ok(f"Renamed to “{renamed['name']}”."))


async def _set_status(request: Request, admin: Admin, api: AdminApi, kind: str, owner_id: int, form: Any) -> Response:
    plural = PLURAL[kind]
    disabled = text(form, "disabled") == "true"
    changed = await api.call("PATCH", f"/{plural}/{owner_id}", actor=admin.name, json={"disabled": disabled})
    note = "disabled: its tokens are refused until it is enabled again" if disabled else "enabled"
    return redirect(request, f"/{plural}/{owner_id}", ok(f"“{changed['name']}” is {note}."))


async def _confirm_delete(request: Request, admin: Admin, api: AdminApi, kind: str, owner_id: int) -> Response:
    plural = PLURAL[kind]
    owner = await api.call("GET", f"/{plural}/{owner_id}", actor=admin.name)
    hooks = await api.call("GET", "/webhooks", actor=admin.name, params={"owner_type": kind, "owner_id": owner_id})
    context = {"kind": kind, "plural": plural, "owner": owner, "webhooks": hooks["items"]}
    return render(request, "owner_delete.html", context)


async def _delete(request: Request, admin: Admin, api: AdminApi, kind: str, owner_id: int, form: Any) -> Response:
    plural = PLURAL[kind]
    owner = await api.call("GET", f"/{plural}/{owner_id}", actor=admin.name)
    cascade = text(form, "cascade") == "yes"
    try:
        await api.call("DELETE", f"/{plural}/{owner_id}", actor=admin.name, params={"cascade": cascade})
    except ApiError as exc:
        if exc.code != "has_tokens":
            raise
        tokens = exc.body.get("tokens", owner["tokens"])
        note = f"“{owner['name']}” still has {tokens} token(s). Tick “also delete its tokens” to delete them too."
        return redirect(request, f"/{plural}/{owner_id}/delete", failed(note))
    extra = f" and its {owner['tokens']} token(s)" if cascade and owner["tokens"] else ""
    return redirect(request, f"/{plural}", ok(f"Deleted {kind} “{owner['name']}”{extra}."))


@router.get("/applications", summary="List applications")
async def list_applications(
    request: Request, admin: AdminDep, api: ApiDep, q: Search = "", status: Status = "", page: PageNo = 1
) -> Response:
    return await _list_page(request, admin, api, "application", filters={"q": q, "status": status, "page": page})


@router.post("/applications", summary="Create a application")
async def create_application(request: Request, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _create(request, admin, api, "application", form)


@router.get("/applications/{owner_id}", summary="One application")
async def show_application(
    request: Request, owner_id: Id, admin: AdminDep, api: ApiDep, members_page: PageNo = 1
) -> Response:
    return await _detail(request, admin, api, "application", owner_id, members_page)


@router.post("/applications/{owner_id}/rename", summary="Rename a application")
async def rename_application(request: Request, owner_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _rename(request, admin, api, "application", owner_id, form)


@router.post("/applications/{owner_id}/status", summary="Disable or enable a application")
async def set_application_status(
    request: Request, owner_id: Id, admin: AdminDep, form: FormDep, api: ApiDep
) -> Response:
    return await _set_status(request, admin, api, "application", owner_id, form)


@router.get("/applications/{owner_id}/delete", summary="Confirm deleting a application")
async def confirm_delete_application(request: Request, owner_id: Id, admin: AdminDep, api: ApiDep) -> Response:
    return await _confirm_delete(request, admin, api, "application", owner_id)


@router.post("/applications/{owner_id}/delete", summary="Delete a application")
async def delete_application(request: Request, owner_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _delete(request, admin, api, "application", owner_id, form)


@router.get("/groups", summary="List groups")
async def list_groups(
    request: Request, admin: AdminDep, api: ApiDep, q: Search = "", status: Status = "", page: PageNo = 1
) -> Response:
    return await _list_page(request, admin, api, "group", filters={"q": q, "status": status, "page": page})


@router.post("/groups", summary="Create a group")
async def create_group(request: Request, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _create(request, admin, api, "group", form)


@router.get("/groups/{owner_id}", summary="One group")
async def show_group(
    request: Request, owner_id: Id, admin: AdminDep, api: ApiDep, members_page: PageNo = 1
) -> Response:
    return await _detail(request, admin, api, "group", owner_id, members_page)


@router.post("/groups/{owner_id}/rename", summary="Rename a group")
async def rename_group(request: Request, owner_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _rename(request, admin, api, "group", owner_id, form)


@router.post("/groups/{owner_id}/status", summary="Disable or enable a group")
async def set_group_status(request: Request, owner_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _set_status(request, admin, api, "group", owner_id, form)


@router.get("/groups/{owner_id}/delete", summary="Confirm deleting a group")
async def confirm_delete_group(request: Request, owner_id: Id, admin: AdminDep, api: ApiDep) -> Response:
    return await _confirm_delete(request, admin, api, "group", owner_id)


@router.post("/groups/{owner_id}/delete", summary="Delete a group")
async def delete_group(request: Request, owner_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _delete(request, admin, api, "group", owner_id, form)


@router.get("/users", summary="List users")
async def list_users(
    request: Request, admin: AdminDep, api: ApiDep, q: Search = "", status: Status = "", page: PageNo = 1
) -> Response:
    return await _list_page(request, admin, api, "user", filters={"q": q, "status": status, "page": page})


@router.post("/users", summary="Create a user")
async def create_user(request: Request, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _create(request, admin, api, "user", form)


@router.get("/users/{owner_id}", summary="One user")
async def show_user(request: Request, owner_id: Id, admin: AdminDep, api: ApiDep, members_page: PageNo = 1) -> Response:
    return await _detail(request, admin, api, "user", owner_id, members_page)


@router.post("/users/{owner_id}/rename", summary="Rename a user")
async def rename_user(request: Request, owner_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _rename(request, admin, api, "user", owner_id, form)


@router.post("/users/{owner_id}/status", summary="Disable or enable a user")
async def set_user_status(request: Request, owner_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _set_status(request, admin, api, "user", owner_id, form)


@router.get("/users/{owner_id}/delete", summary="Confirm deleting a user")
async def confirm_delete_user(request: Request, owner_id: Id, admin: AdminDep, api: ApiDep) -> Response:
    return await _confirm_delete(request, admin, api, "user", owner_id)


@router.post("/users/{owner_id}/delete", summary="Delete a user")
async def delete_user(request: Request, owner_id: Id, admin: AdminDep, form: FormDep, api: ApiDep) -> Response:
    return await _delete(request, admin, api, "user", owner_id, form)
