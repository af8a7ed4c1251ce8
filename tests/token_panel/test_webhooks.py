"""Webhooks through the panel: an owner's section, "Add webhook" (the secret shown once), a
refused URL explained on the form, new secret and delete behind confirmations, the list page."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.token_panel.support import ADMIN, csrf_of, post_form, unique
from tests.token_validator.support import ADMIN_KEY, RunningValidator

PUBLIC_URL = "https://93.184.215.14/hooks/panel"
_SECRET = re.compile(r'id="secret" class="mono" value="(whsec_[A-Za-z0-9+/=]+)"')


def _api(validator: RunningValidator, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(
        method,
        f"{validator.url}/v1/admin{path}",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
        **kwargs,
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def _application(admin: TestClient) -> tuple[str, int]:
    name = unique("hooked")
    created = post_form(admin, "/applications", {"name": name})
    assert created.status_code == 303, created.text
    return name, int(created.headers["location"].rsplit("/", 1)[1])


def _form(admin: TestClient, owner_id: int, kind: str = "application") -> dict[str, str]:
    page = admin.get("/webhooks/new", params={"owner_type": kind, "owner_id": owner_id})
    assert page.status_code == 200, page.text
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce
    return {"csrf": csrf_of(page.text), "nonce": nonce.group(1), "owner_type": kind, "owner_id": str(owner_id)}


def _add(admin: TestClient, owner_id: int, **fields: Any) -> tuple[str, int, httpx.Response]:
    data = {**_form(admin, owner_id), "url": PUBLIC_URL, "events": ["message.sent", "message.failed"], **fields}
    shown = admin.post("/webhooks", data=data)
    assert shown.status_code == 200, shown.text
    secret, webhook_id = _SECRET.search(shown.text), re.search(r'href="/webhooks/(\d+)"', shown.text)
    assert secret and webhook_id
    return secret.group(1), int(webhook_id.group(1)), shown


def test_an_owner_gets_a_webhook_and_its_secret_is_shown_once(admin: TestClient, validator: RunningValidator) -> None:
    name, app_id = _application(admin)
    owner_page = admin.get(f"/applications/{app_id}")
    assert "Webhooks" in owner_page.text and "No webhooks" in owner_page.text
    assert f"/webhooks/new?owner_type=application&amp;owner_id={app_id}" in owner_page.text

    secret, webhook_id, shown = _add(admin, app_id, description="Billing <team>")
    assert "It will not be shown again" in shown.text and 'data-copy="secret"' in shown.text
    assert shown.headers["cache-control"] == "no-store"
    stored = _api(validator, "GET", f"/webhooks/{webhook_id}")
    assert stored["url"] == PUBLIC_URL and stored["events"] == ["message.sent", "message.failed"]
    assert stored["description"] == "Billing <team>" and stored["owner_ref"] == f"application:{app_id}"

    seen = [admin.get(f"/applications/{app_id}"), admin.get("/webhooks"), admin.get(f"/webhooks/{webhook_id}")]
    for page in seen:
        assert page.status_code == 200 and PUBLIC_URL in page.text and secret not in page.text
    assert "message.failed" in seen[0].text and "Billing &lt;team&gt;" in seen[0].text
    assert html.escape(name) in seen[1].text and f'href="/applications/{app_id}"' in seen[1].text

    audit = _api(validator, "GET", "/audit", params={"action": "webhook.create", "target_id": str(webhook_id)})
    assert [(a["actor"], a["target_id"]) for a in audit["items"]] == [(ADMIN, str(webhook_id))]


def test_the_same_form_sent_again_adds_nothing_and_shows_no_secret(
    admin: TestClient, validator: RunningValidator
) -> None:
    _, app_id = _application(admin)
    data = {**_form(admin, app_id), "url": PUBLIC_URL, "events": "message.sent"}
    first = admin.post("/webhooks", data=data)
    secret = _SECRET.search(first.text)
    assert first.status_code == 200 and secret
    again = admin.post("/webhooks", data=data)
    assert again.status_code == 409 and "already sent" in again.text and "whsec_" not in again.text
    assert (
        len(_api(validator, "GET", "/webhooks", params={"owner_type": "application", "owner_id": app_id})["items"]) == 1
    )


def test_a_refused_url_shows_the_validators_reason_on_the_form(admin: TestClient, validator: RunningValidator) -> None:
    _, app_id = _application(admin)
    for url, words in (
        ("http://127.0.0.1:9000/hook", "a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "a link-local address"),
        ("http://10.1.2.3/", "a private address"),
        ("ftp://93.184.215.14/", "http:// or https://"),
    ):
        data = {**_form(admin, app_id), "url": url, "events": "message.sent", "description": "kept"}
        refused = admin.post("/webhooks", data=data)
        assert refused.status_code == 422, refused.text
        assert words in html.unescape(refused.text), refused.text
        assert 'aria-invalid="true"' in refused.text and f'value="{url}"' in html.unescape(refused.text)
        assert 'value="kept"' in refused.text and "whsec_" not in refused.text
    missing = admin.post("/webhooks", data={**_form(admin, app_id), "url": "", "description": "x" * 201})
    assert missing.status_code == 422
    assert "Choose at least one event." in missing.text and "Enter the URL" in missing.text
    assert "at most 200 characters" in missing.text
    assert _api(validator, "GET", "/webhooks", params={"owner_type": "application", "owner_id": app_id})["items"] == []


def test_new_secret_and_delete_each_ask_first(admin: TestClient, validator: RunningValidator) -> None:
    _, app_id = _application(admin)
    secret, webhook_id, _ = _add(admin, app_id)

    confirm = admin.get(f"/webhooks/{webhook_id}/secret")
    assert confirm.status_code == 200 and "stops signing at once" in confirm.text
    assert secret not in confirm.text
    renewed = admin.post(f"/webhooks/{webhook_id}/secret", data={"csrf": csrf_of(confirm.text)})
    new_secret = _SECRET.search(renewed.text)
    assert renewed.status_code == 200 and new_secret and new_secret.group(1) != secret
    assert "It will not be shown again" in renewed.text and "The old secret signs nothing" in renewed.text

    disabled = post_form(
        admin, f"/webhooks/{webhook_id}/status", {"enabled": "false"}, from_page=f"/webhooks/{webhook_id}"
    )
    assert disabled.status_code == 303
    assert _api(validator, "GET", f"/webhooks/{webhook_id}")["enabled"] is False

    confirm = admin.get(f"/webhooks/{webhook_id}/delete")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    assert _api(validator, "GET", f"/webhooks/{webhook_id}")["id"] == webhook_id  # asking deleted nothing
    deleted = admin.post(f"/webhooks/{webhook_id}/delete", data={"csrf": csrf_of(confirm.text)})
    assert deleted.status_code == 303 and deleted.headers["location"] == f"/applications/{app_id}"
    assert "Deleted the webhook" in admin.get(f"/applications/{app_id}").text
    assert admin.get(f"/webhooks/{webhook_id}").status_code == 404

    actions = _api(validator, "GET", "/audit", params={"target_type": "webhook", "target_id": str(webhook_id)})
    assert sorted((a["action"], a["actor"]) for a in actions["items"]) == [
        ("webhook.create", ADMIN),
        ("webhook.delete", ADMIN),
        ("webhook.secret", ADMIN),
        ("webhook.update", ADMIN),
    ]


def test_deleting_the_owner_says_its_webhooks_go_too(admin: TestClient, validator: RunningValidator) -> None:
    _, app_id = _application(admin)
    _, webhook_id, _ = _add(admin, app_id)
    confirm = admin.get(f"/applications/{app_id}/delete")
    assert "Its 1 webhook(s) are deleted with it" in confirm.text
    deleted = admin.post(f"/applications/{app_id}/delete", data={"csrf": csrf_of(confirm.text)})
    assert deleted.status_code == 303
    assert admin.get(f"/webhooks/{webhook_id}").status_code == 404
    _, bare_id = _application(admin)
    assert "webhook(s) are deleted" not in admin.get(f"/applications/{bare_id}/delete").text


def test_forms_without_csrf_or_session_change_nothing(
    admin: TestClient, anonymous: TestClient, validator: RunningValidator
) -> None:
    _, app_id = _application(admin)
    _, webhook_id, _ = _add(admin, app_id)
    data = {**_form(admin, app_id), "url": PUBLIC_URL, "events": "message.sent"}
    data.pop("csrf")
    assert admin.post("/webhooks", data=data).status_code == 403
    assert admin.post(f"/webhooks/{webhook_id}/delete", data={"csrf": "forged"}).status_code == 403
    assert admin.post(f"/webhooks/{webhook_id}/secret", data={}).status_code == 403
    assert (
        len(_api(validator, "GET", "/webhooks", params={"owner_type": "application", "owner_id": app_id})["items"]) == 1
    )


def test_bad_owner_or_id_is_a_4xx_page(admin: TestClient) -> None:
    assert admin.get("/webhooks/new", params={"owner_type": "application", "owner_id": 999999}).status_code == 404
    assert admin.get("/webhooks/new", params={"owner_type": "robot", "owner_id": 1}).status_code == 400
    assert admin.get("/webhooks/999999").status_code == 404
    assert admin.get("/webhooks/0").status_code == 400
    page = admin.get("/webhooks")
    forged = admin.post("/webhooks", data={"csrf": csrf_of(page.text), "owner_type": "robot", "owner_id": "x"})
    assert forged.status_code == 400


def test_the_nav_links_the_webhooks_page(admin: TestClient) -> None:
    page = admin.get("/webhooks")
    assert page.status_code == 200 and '<a href="/webhooks" aria-current="page">Webhooks</a>' in page.text
