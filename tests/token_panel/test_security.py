"""Anonymous sessions refused everywhere, CSRF on every form, names escaped, the token shown once."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.token_panel.support import MessageLogDb, csrf_of, post_form, unique
from tests.token_validator.support import ADMIN_KEY, SERVICE_KEY, RunningValidator
from token_panel.app import ROUTERS

PUBLIC = {("GET", "/signin"), ("POST", "/signin"), ("POST", "/signout"), ("GET", "/healthz"), ("GET", "/metrics")}
XSS = '<script>alert("x")</script>'


def _routes() -> list[tuple[str, str]]:
    """Every page and action the app serves (it includes exactly these routers)."""
    found = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            found += [(method, path) for method in sorted(route.methods or ())]
    return found


def _audit_total(validator: RunningValidator) -> int:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    total: int = httpx.get(f"{validator.url}/v1/admin/audit", headers=headers).json()["total"]
    return total


def test_every_admin_page_and_action_refuses_an_anonymous_session(
    anonymous: TestClient, validator: RunningValidator
) -> None:
    routes = [r for r in _routes() if r not in PUBLIC]
    assert len(routes) >= 30
    before = _audit_total(validator)
    # An anonymous session holds a genuine CSRF token (the sign-in form's): still refused.
    token = csrf_of(anonymous.get("/signin").text)
    for method, path in routes:
        data = {"csrf": token, "name": "intruder", "user": "x", "group": "x", "grant": "5", "cascade": "yes"}
        response = anonymous.request(method, path, data=data if method == "POST" else None)
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/signin"), (method, path)
    assert _audit_total(validator) == before, "an anonymous request changed something"


def test_every_form_needs_this_sessions_csrf_token(admin: TestClient, validator: RunningValidator) -> None:
    posts = [path for method, path in _routes() if method == "POST" and (method, path) not in PUBLIC]
    assert len(posts) >= 12
    before = _audit_total(validator)
    other_session = csrf_of(httpx.Client(transport=admin._transport, base_url="http://t").get("/signin").text)
    for path in posts:
        for data in ({"name": "no-csrf"}, {"name": "forged", "csrf": other_session}, {"csrf": ""}):
            response = admin.post(path, data=data)
            assert response.status_code == 403, (path, data, response.status_code)
            assert "Form refused" in response.text
    json_body = admin.post("/groups", json={"name": "json-group"}, headers={"accept": "application/json"})
    assert json_body.status_code == 403 and json_body.json()["code"] == "csrf_failed"
    assert _audit_total(validator) == before, "a form without its CSRF token changed something"
    assert admin.get("/tokens").status_code == 200, "still signed in"


def _make_everything(admin: TestClient, name: str) -> dict[str, Any]:
    """An application, a group and a user (in it) all named `name`, and a token for each."""
    made: dict[str, Any] = {}
    for plural, kind in (("applications", "application"), ("groups", "group"), ("users", "user")):
        created = post_form(admin, f"/{plural}", {"name": name, "group": name if kind == "user" else ""})
        assert created.status_code == 303, created.text
        made[kind] = int(created.headers["location"].rsplit("/", 1)[1])
        page = admin.get("/tokens/new")
        form = {
            "csrf": csrf_of(page.text),
            "nonce": re.search(r'name="nonce" value="([^"]+)"', page.text).group(1),  # type: ignore[union-attr]
            "kind": kind,
            "owner": name,
            "actions": "sms.send",
            "restriction": "max_uses",
            "limit": "1",
            "name": name,
        }
        shown = admin.post("/tokens", data=form)
        assert shown.status_code == 200, shown.text
        plaintext = re.search(r'id="plaintext" class="mono" value="([^"]+)"', shown.text).group(1)  # type: ignore[union-attr]
        made[f"{kind}_token"] = plaintext
        made[f"{kind}_token_id"] = int(re.search(r'href="/tokens/(\d+)"', shown.text).group(1))  # type: ignore[union-attr]
    return made


def _every_page(made: dict[str, Any]) -> list[str]:
    pages = ["/", "/tokens", "/applications", "/groups", "/users", "/usage", "/refusals", "/audit", "/messages"]
    for plural, kind in (("applications", "application"), ("groups", "group"), ("users", "user")):
        pages += [f"/{plural}/{made[kind]}", f"/{plural}/{made[kind]}/delete", f"/tokens/{made[kind + '_token_id']}"]
        token_id = made[f"{kind}_token_id"]
        pages += [f"/tokens/{token_id}/usage", f"/tokens/{token_id}/revoke", f"/refusals?token={token_id}"]
    return pages


def _use(validator: RunningValidator, token: str, times: int) -> list[str]:
    codes = []
    for _ in range(times):
        decision = httpx.post(
            f"{validator.url}/v1/validate",
            json={"token": token, "action": "sms.send"},
            headers={"Authorization": f"Bearer {SERVICE_KEY}"},
        ).json()
        codes.append(decision["code"])
    return codes


def test_html_in_names_is_escaped_everywhere(
    admin: TestClient, validator: RunningValidator, message_log: MessageLogDb
) -> None:
    name = f"{XSS} {unique('x')}"
    made = _make_everything(admin, name)
    assert _use(validator, made["user_token"], 2) == ["ok", "usage_exhausted"]
    message_id = f"{XSS}-{unique('m')}"
    message_log.add({"id": message_id, "evento": "enviado", "cola": XSS, "telefono": XSS}, datetime.now(UTC))
    pages = [*_every_page(made), f"/messages?cola={XSS}", f"/tokens/new?owner={XSS}"]
    pages.append("/messages?" + httpx.QueryParams({"id": message_id}).__str__())
    for path in pages:
        response = admin.get(path)
        assert response.status_code == 200, (path, response.text[:500])
        assert "<script>" not in response.text, path
        # The overview, usage and refusals name tokens by their prefix only.
        # (and the log's first page holds other tests' events: its searches below show the name).
        if (
            path not in ("/", "/usage", "/messages")
            and not path.startswith("/refusals")
            and not path.endswith("/usage")
        ):
            assert "&lt;script&gt;" in response.text, f"{path} does not show the name"
    renamed = post_form(admin, f"/groups/{made['group']}/rename", {"name": f"{name}!"})
    flash_page = admin.get(renamed.headers["location"])
    assert "&lt;script&gt;" in flash_page.text and "<script>" not in flash_page.text


def test_the_plaintext_token_never_appears_after_the_creation_page(
    admin: TestClient, validator: RunningValidator
) -> None:
    made = _make_everything(admin, unique("once"))
    tokens = [made[f"{k}_token"] for k in ("application", "group", "user")]
    for token in tokens:
        _use(validator, token, 2)  # used and refused, so usage, refusals and last-used are on show
    for path in _every_page(made):
        page = admin.get(path).text
        for token in tokens:
            assert token not in page, path
            assert token[8:] not in page, path  # nor any of it past the visible prefix


def test_pages_carry_security_headers_and_are_not_cached(admin: TestClient) -> None:
    page = admin.get("/tokens/new")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
