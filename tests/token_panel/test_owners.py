"""Applications, groups and users through the panel, against the real validator."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

from tests.token_panel.support import post_form, unique
from tests.token_validator.support import RunningValidator


def _create(admin: TestClient, plural: str, name: str, **extra: str) -> int:
    response = post_form(admin, f"/{plural}", {"name": name, **extra})
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def test_create_then_find_by_search_with_pagination(admin: TestClient) -> None:
    stem = unique("app")
    for n in range(23):
        _create(admin, "applications", f"{stem}-{n:02d}")
    listed = re.compile(rf'<a href="/applications/\d+">({stem}-\d+)</a>')
    first = admin.get("/applications", params={"q": stem})
    assert len(listed.findall(first.text)) == 20 and "Page 1 of 2" in first.text and "23 in all" in first.text
    second = admin.get("/applications", params={"q": stem, "page": 2})
    assert listed.findall(second.text) == [f"{stem}-20", f"{stem}-21", f"{stem}-22"]
    nothing = admin.get("/applications", params={"q": unique("nobody")})
    assert "No application matches this search." in nothing.text


def test_empty_list_says_how_to_begin(admin: TestClient) -> None:
    page = admin.get("/applications", params={"status": "disabled", "q": unique("none")})
    assert page.status_code == 200 and "No application matches" in page.text
    assert 'action="/applications"' in page.text  # the create form is right there


def test_duplicate_and_empty_names_are_explained(admin: TestClient) -> None:
    name = unique("dup")
    _create(admin, "users", name)
    again = post_form(admin, "/users", {"name": name})
    assert again.status_code == 422 and "There is already a user named" in again.text
    empty = post_form(admin, "/users", {"name": "   "})
    assert empty.status_code == 422 and "Enter a name." in empty.text


def test_rename_disable_enable(admin: TestClient, validator: RunningValidator) -> None:
    app_id = _create(admin, "applications", unique("billing"))
    new_name = unique("invoices")
    renamed = post_form(admin, f"/applications/{app_id}/rename", {"name": new_name})
    assert renamed.status_code == 303
    page = admin.get(f"/applications/{app_id}")
    assert f"Renamed to “{new_name}”." in page.text and f"<h1>{new_name}" in page.text
    plaintext, _ = validator.tokens.make("application", new_name)
    assert post_form(admin, f"/applications/{app_id}/status", {"disabled": "true"}).status_code == 303
    page = admin.get(f"/applications/{app_id}")
    assert "is disabled" in page.text and "subject_disabled" in page.text
    assert _validate(validator, plaintext) == "subject_disabled"
    post_form(admin, f"/applications/{app_id}/status", {"disabled": "false"})
    assert "is enabled" in admin.get(f"/applications/{app_id}").text
    assert _validate(validator, plaintext) == "ok"


def _validate(validator: RunningValidator, token: str) -> str:
    from tests.token_validator.support import SERVICE_KEY

    answer = httpx.post(
        f"{validator.url}/v1/validate",
        json={"token": token, "action": "sms.send"},
        headers={"Authorization": f"Bearer {SERVICE_KEY}"},
    )
    code: str = answer.json()["code"]
    return code


def test_delete_asks_first_and_says_when_tokens_exist(admin: TestClient, validator: RunningValidator) -> None:
    name = unique("owner")
    user_id = _create(admin, "users", name)
    plaintext, _ = validator.tokens.make("user", name)
    confirm = admin.get(f"/users/{user_id}/delete")
    assert "has 1 token(s)" in confirm.text and 'name="cascade"' in confirm.text
    refused = post_form(admin, f"/users/{user_id}/delete", {})
    assert refused.headers["location"] == f"/users/{user_id}/delete"
    assert "still has 1 token(s)" in admin.get(refused.headers["location"]).text
    assert admin.get(f"/users/{user_id}").status_code == 200
    deleted = post_form(admin, f"/users/{user_id}/delete", {"cascade": "yes"})
    assert deleted.headers["location"] == "/users"
    assert "and its 1 token(s)" in admin.get("/users").text
    assert admin.get(f"/users/{user_id}").status_code == 404
    assert _validate(validator, plaintext) == "invalid_token"


def test_delete_without_tokens_needs_no_box(admin: TestClient) -> None:
    app_id = _create(admin, "applications", unique("empty"))
    assert "It has no tokens." in admin.get(f"/applications/{app_id}/delete").text
    assert post_form(admin, f"/applications/{app_id}/delete", {}).headers["location"] == "/applications"


def test_membership_from_both_sides(admin: TestClient) -> None:
    group, user, other = unique("team"), unique("eva"), unique("luis")
    group_id = _create(admin, "groups", group)
    user_id = _create(admin, "users", user, group=group)
    assert f"Created user “{user}” in group “{group}”." in admin.get(f"/users/{user_id}").text
    other_id = _create(admin, "users", other)
    added = post_form(admin, f"/groups/{group_id}/members", {"user": other})
    assert "is a member now" in admin.get(added.headers["location"]).text
    members = admin.get(f"/groups/{group_id}").text
    assert f'href="/users/{user_id}"' in members and f'href="/users/{other_id}"' in members
    missing = post_form(admin, f"/groups/{group_id}/members", {"user": unique("ghost")})
    assert "There is no user named" in admin.get(missing.headers["location"]).text
    left = post_form(admin, f"/groups/{group_id}/members/{user_id}/remove", {"back": "user"})
    assert left.headers["location"] == f"/users/{user_id}"
    assert "Not in any group." in admin.get(f"/users/{user_id}").text
    post_form(admin, f"/users/{user_id}/groups", {"group": group})
    assert f'href="/groups/{group_id}"' in admin.get(f"/users/{user_id}").text
    unknown_group = post_form(admin, "/users", {"name": unique("x"), "group": unique("nogroup")})
    assert unknown_group.status_code == 422 and "There is no group with this name" in unknown_group.text


def test_group_quota_set_and_granted(admin: TestClient) -> None:
    group_id = _create(admin, "groups", unique("quota"), restriction="monthly", limit="100")
    page = admin.get(f"/groups/{group_id}").text
    assert "0 of 100 used this month" in page
    post_form(admin, f"/groups/{group_id}/quota", {"restriction": "max_uses", "limit": "7"})
    post_form(admin, f"/groups/{group_id}/quota/grant", {"grant": "3"})
    page = admin.get(f"/groups/{group_id}").text
    assert "0 of 7 used (+3 granted) in all" in page and "10 left" in page
    bad = post_form(admin, f"/groups/{group_id}/quota", {"restriction": "monthly", "limit": "x"})
    assert "Enter a whole number" in admin.get(bad.headers["location"]).text


def test_unknown_owner_is_a_404_page(admin: TestClient) -> None:
    page = admin.get("/groups/999999")
    assert page.status_code == 404 and "No group with id 999999" in page.text
    assert admin.get("/groups/abc").status_code == 400
    assert admin.get("/no-such-page").status_code == 404
    assert re.search(r"<h1>Not found</h1>", admin.get("/no-such-page").text)
