"""The panel in real headless Chromium, over the whole suite started as `make run` starts it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.e2e.conftest import Suite, started_suite
from tests.support import ROOT, unavailable, wait_until

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "token_panel"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 360, "height": 740}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    with started_suite(tmp_path_factory.mktemp("panel-var"), vhost_prefix="cartero-panel") as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium for the module: the Debian package, never a downloaded build."""
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium at {CHROMIUM} (Debian package 'chromium'; local/install-test-deps.sh)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def _context(browser: Browser, suite: Suite, viewport: dict[str, int] = DESKTOP) -> BrowserContext:
    context = browser.new_context(base_url=suite.panel, viewport=viewport)  # type: ignore[arg-type]
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=suite.panel)
    context.set_default_timeout(10_000)
    return context


def _sign_in(page: Page, suite: Suite) -> None:
    first = suite.first_run()
    page.get_by_label("Username").fill(first["ADMIN_USERNAME"])
    page.get_by_label("Password").fill(first["ADMIN_PASSWORD"])
    page.get_by_role("button", name="Sign in").click()


def _nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-desktop.png"), full_page=True)


def _send_sms(suite: Suite, token: str) -> httpx.Response:
    return httpx.post(
        f"{suite.sender}/v1/sms",
        json={"mensaje": "hola desde el panel", "telefono": "+34600111222"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def test_an_admin_gives_a_user_a_monthly_token_and_watches_it_run_out(browser: Browser, suite: Suite) -> None:
    context = _context(browser, suite)
    page = context.new_page()
    page.goto("/tokens")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Ftokens$"))
    _sign_in(page, suite)
    expect(page).to_have_url(re.compile(r"/tokens$"))

    _nav(page, "Groups")
    page.get_by_label("Name", exact=True).fill("Ventas <b>Norte</b>")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ventas <b>Norte</b>")

    _nav(page, "Users")
    page.get_by_label("Name", exact=True).fill("marta")
    page.get_by_label("Add to group").fill("Ventas <b>Norte</b>")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_contain_text("in group “Ventas <b>Norte</b>”")

    page.get_by_role("link", name="New token for this user").click()
    expect(page.get_by_label("Owner's name")).to_have_value("marta")
    page.get_by_label("Uses per month").check()
    page.get_by_label("Limit (for max uses or per month)").fill("3")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_contain_text("shown only this once")
    _shot(page, "token-created")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-note")).to_have_text("Copied.")
    token = page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(r"usr_[A-Za-z0-9_-]{43}", token)
    assert page.get_by_label("The new token").input_value() == token

    sent = [_send_sms(suite, token) for _ in range(3)]
    assert [r.status_code for r in sent] == [202, 202, 202], [r.text for r in sent]
    fourth = _send_sms(suite, token)
    assert fourth.status_code == 429 and fourth.json()["code"] == "monthly_quota_exhausted"

    seen_after_creation: list[str] = []
    page.get_by_role("link", name=re.compile("go to the token")).click()
    expect(page.locator("#used")).to_have_text("3 / 3")
    _shot(page, "token-used-up")
    seen_after_creation.append(page.content())
    _nav(page, "Tokens")
    row = page.locator("tr", has_text=token[:8])
    expect(row).to_contain_text("3 / 3")
    expect(row).to_contain_text("3 per month")
    seen_after_creation.append(page.content())
    row.get_by_role("link", name=re.compile(re.escape(token[:8]))).click()
    page.get_by_role("link", name="All refusals").click()
    expect(page.locator("tbody tr").first).to_contain_text("monthly_quota_exhausted")
    _shot(page, "refusals-of-token")
    seen_after_creation.append(page.content())

    message_id = sent[0].json()["id"]
    _nav(page, "Message log")
    page.get_by_label("Message id").fill(message_id)
    page.get_by_role("button", name="Search").click()
    wait_until(
        lambda: page.reload() and "consumido" in page.locator(".timeline").inner_text(),
        timeout=15,
        interval=0.5,
        what="the message consumed in the timeline",
    )
    expect(page.locator(".timeline-summary")).to_contain_text("enviado → consumido")
    _shot(page, "message-timeline")
    seen_after_creation.append(page.content())

    page.goto("/tokens?q=" + token[:8])
    page.locator("tr", has_text=token[:8]).get_by_role("link").first.click()
    page.get_by_role("link", name="Revoke…").click()
    page.get_by_role("button", name="Revoke token").click()
    expect(page.get_by_role("status")).to_contain_text("is revoked")
    expect(page.locator("h1 .badge")).to_have_text("revoked")
    seen_after_creation.append(page.content())
    assert _send_sms(suite, token).json()["code"] == "token_revoked"

    page.goto("/audit")
    expect(page.locator("tbody")).to_contain_text("token.revoke")
    seen_after_creation.append(page.content())
    for html in seen_after_creation:
        assert token not in html and token[8:] not in html

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    for protected in ("/", "/tokens", "/groups", "/users", "/refusals", "/messages", "/audit", "/usage"):
        page.goto(protected)
        expect(page).to_have_url(re.compile(r"/signin(\?next=.*)?$"))
        expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    context.close()


def test_an_admin_registers_a_webhook_renews_its_secret_and_deletes_it(browser: Browser, suite: Suite) -> None:
    context = _context(browser, suite)
    page = context.new_page()
    page.goto("/applications")
    _sign_in(page, suite)
    page.get_by_label("Name", exact=True).fill("Tienda")
    page.get_by_role("button", name="Create application").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tienda")
    expect(page.locator("section", has_text="Webhooks").first).to_contain_text("No webhooks")

    page.get_by_role("link", name="Add webhook").click()
    page.get_by_label("URL").fill("ftp://127.0.0.1/hook")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#url-error")).to_contain_text("http:// or https://")
    page.get_by_label("URL").fill("http://127.0.0.1:9/hook")  # make run allows a local receiver
    page.get_by_label("message.retrying", exact=False).check()
    page.get_by_label("Description (optional)").fill("orders")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_role("alert")).to_contain_text("It will not be shown again")
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-note")).to_have_text("Copied.")
    secret = page.evaluate("navigator.clipboard.readText()")
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret), secret
    _shot(page, "webhook-created")

    reader = {"Authorization": f"Bearer {_secrets(suite)['VALIDATOR_WEBHOOKS_KEY']}"}

    def endpoints() -> list[dict[str, object]]:
        owner = page.locator("dd a[href^='/applications/']").first.get_attribute("href") or ""
        answer = httpx.get(
            f"{suite.validator}/v1/webhooks/endpoints",
            params={"owner_ref": "application:" + owner.rsplit("/", 1)[1]},
            headers=reader,
            timeout=5,
        )
        assert answer.status_code == 200, answer.text
        items: list[dict[str, object]] = answer.json()["items"]
        return items

    assert [(e["url"], e["secret"], e["events"]) for e in endpoints()] == [
        ("http://127.0.0.1:9/hook", secret, ["message.sent", "message.retrying", "message.failed"])
    ]
    seen: list[str] = []
    page.get_by_role("link", name=re.compile("go to the webhook")).click()
    expect(page.locator("h1 .badge")).to_have_text("enabled")
    seen.append(page.content())
    page.get_by_role("link", name="New secret…").click()
    page.get_by_role("button", name="Make a new secret").click()
    expect(page.get_by_role("alert")).to_contain_text("The old secret signs nothing")
    renewed = page.get_by_label("Signing secret").input_value()
    assert renewed.startswith("whsec_") and renewed != secret
    assert [e["secret"] for e in endpoints()] == [renewed]

    page.get_by_role("link", name=re.compile("go to the webhook")).click()
    page.get_by_role("link", name="Delete this webhook…").click()
    page.get_by_role("button", name="Delete webhook").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted the webhook")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tienda")
    seen.append(page.content())
    _nav(page, "Webhooks")
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhooks")
    seen.append(page.content())
    page.goto("/audit")
    expect(page.locator("tbody")).to_contain_text("webhook.delete")
    seen.append(page.content())
    for html in seen:
        assert secret not in html and renewed not in html
    # One left in place, with a long URL, for the layout checks of the main pages below.
    kept = httpx.post(
        f"{suite.validator}/v1/admin/webhooks",
        json={
            "owner_type": "application",
            "owner_id": 1,
            "url": "http://127.0.0.1:9/" + "a-rather-long-path-segment/" * 6 + "hook?with=query",
            "events": ["message.failed"],
            "description": "kept for the layout checks",
        },
        headers={"Authorization": f"Bearer {_secrets(suite)['VALIDATOR_ADMIN_KEY']}"},
        timeout=5,
    )
    assert kept.status_code == 201, kept.text
    context.close()


MAIN_PAGES = {
    "overview": "/",
    "tokens": "/tokens",
    "token-new": "/tokens/new",
    "groups": "/groups",
    "users": "/users",
    "usage": "/usage",
    "refusals": "/refusals",
    "messages": "/messages",
    "audit": "/audit",
    "webhooks": "/webhooks",
}


def _label_problems(page: Page) -> list[str]:
    """Form controls a screen reader could not name."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
            .filter(e => e.type !== 'hidden' && !e.labels.length && !e.getAttribute('aria-label'))
            .map(e => e.name || e.id)"""
    )
    return found


def test_an_admin_gives_a_token_a_rate_limit_and_the_sender_answers_429_over_it(browser: Browser, suite: Suite) -> None:
    context = _context(browser, suite)
    page = context.new_page()
    page.goto("/users")
    _sign_in(page, suite)
    page.get_by_label("Name", exact=True).fill("rita")
    page.get_by_role("button", name="Create user").click()
    page.get_by_role("link", name="New token for this user").click()
    page.get_by_label("Uses at most").fill("2")
    page.get_by_label("Per", exact=True).select_option("minute")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("alert")).to_contain_text("shown only this once")
    token = page.get_by_label("The new token").input_value()
    page.get_by_role("link", name=re.compile("go to the token")).click()
    expect(page.locator("#rate-now")).to_have_text("At most 2 uses per minute.")

    codes = [_send_sms(suite, token) for _ in range(3)]
    if [r.status_code for r in codes] == [202, 429, 202]:  # the minute turned between them
        codes = [_send_sms(suite, token) for _ in range(3)]
    assert [r.status_code for r in codes] == [202, 202, 429], [r.text for r in codes]
    refused = codes[-1]
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60 and refused.headers["ratelimit-limit"] == "2"
    context.close()


def test_main_pages_render_on_a_desktop_and_at_360_px(browser: Browser, suite: Suite) -> None:
    """Screenshots under test-artifacts/token_panel/ (git-ignored), to look at; and the checks a
    screenshot cannot make: no sideways scrolling at 360 px, every control labelled."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    setup = _context(browser, suite)
    page = setup.new_page()
    page.goto("/signin")
    page.screenshot(path=str(ARTIFACTS / "signin-desktop.png"), full_page=True)
    _sign_in(page, suite)
    demo = httpx.get(
        f"{suite.validator}/v1/admin/tokens",
        headers={"Authorization": f"Bearer {_secrets(suite)['VALIDATOR_ADMIN_KEY']}"},
        timeout=5,
    ).json()["items"]
    token_id = demo[-1]["id"]
    _send_sms(suite, suite.first_run()["DEMO_TOKEN"])
    pages = {**MAIN_PAGES, "token": f"/tokens/{token_id}", "token-usage": f"/tokens/{token_id}/usage"}
    hooks = httpx.get(
        f"{suite.validator}/v1/admin/webhooks",
        headers={"Authorization": f"Bearer {_secrets(suite)['VALIDATOR_ADMIN_KEY']}"},
        timeout=5,
    ).json()["items"]
    if hooks:
        hook = hooks[-1]["id"]
        pages.update({"webhook": f"/webhooks/{hook}", "webhook-delete": f"/webhooks/{hook}/delete"})
        pages["webhook-owner"] = f"/{hooks[-1]['owner_type']}s/{hooks[-1]['owner_id']}"
    groups = page.goto("/groups")
    assert groups is not None
    first_group = page.locator("tbody a").first
    if first_group.count():
        pages["group"] = first_group.get_attribute("href") or "/groups"
    storage = setup.storage_state()
    setup.close()
    for viewport_name, viewport in (("desktop", DESKTOP), ("360", PHONE)):
        context = browser.new_context(base_url=suite.panel, viewport=viewport, storage_state=storage)  # type: ignore[arg-type]
        page = context.new_page()
        for name, path in pages.items():
            response = page.goto(path)
            assert response is not None and response.status == 200, (path, response and response.status)
            page.screenshot(path=str(ARTIFACTS / f"{name}-{viewport_name}.png"), full_page=True)
            assert _label_problems(page) == [], (path, _label_problems(page))
            if viewport_name == "360":
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{path} scrolls sideways at 360 px ({width} px wide)"
        context.close()


def _secrets(suite: Suite) -> dict[str, str]:
    lines = (suite.var / "secrets.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_an_admin_replays_and_discards_dead_letters(browser: Browser, suite: Suite) -> None:
    from tests.dead_letters.test_api import dead_letter

    dead_letter(suite.amqp_url, "poison-replay", telefono="+34600777666")
    dead_letter(suite.amqp_url, "poison-discard")
    context = _context(browser, suite)
    page = context.new_page()
    page.goto("/")
    _sign_in(page, suite)
    expect(page.get_by_label("Dead letters per queue")).to_contain_text("cola_sms.dlq: 2")

    _nav(page, "Dead letters")
    page.get_by_role("link", name="cola_sms.dlq").click()
    row = page.locator("tbody tr", has_text="poison-replay")
    expect(row).to_contain_text("invalid number +34******666")
    expect(row).not_to_contain_text("+34600777666")
    _shot(page, "dead-letters")
    row.get_by_role("link", name="Replay poison-replay").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Replay 1 message(s) of cola_sms.dlq?")
    page.get_by_role("button", name="Replay now").click()
    expect(page.get_by_role("status")).to_contain_text("1 message(s) replayed.")
    expect(page.locator("tbody")).not_to_contain_text("poison-replay")

    # Back in cola_sms, the consumer delivers it: the message log records it consumed.
    def consumed() -> bool:
        found = httpx.get(f"{suite.events}/v1/events", params={"id": "poison-replay"}, headers=suite.read_auth)
        return any(event.get("evento") == "consumido" for event in found.json())

    wait_until(consumed, timeout=30, what="the replayed message consumed")

    page.get_by_label("Select poison-discard").check()
    page.get_by_role("button", name="Discard selected").click()
    page.get_by_role("button", name="Discard now").click()
    expect(page.get_by_role("status")).to_contain_text("1 message(s) discarded.")
    expect(page.get_by_text("This dead-letter queue is empty.")).to_be_visible()

    page.goto("/audit")
    admin = suite.first_run()["ADMIN_USERNAME"]
    for action, message_id in (("dead_letters.replay", "poison-replay"), ("dead_letters.discard", "poison-discard")):
        # The row's own cells: the page prints the admin's name in its header and the filter
        # echoes an action, so text anywhere on the page proves nothing.
        audited = page.locator("tbody tr").filter(has=page.locator('td[data-label="Action"]', has_text=action))
        expect(audited).to_have_count(1)
        expect(audited.locator('td[data-label="Admin"]')).to_have_text(admin)
        expect(audited.locator('td[data-label="Action"]')).to_have_text(action)
        expect(audited.locator('td[data-label="Target"]')).to_have_text("dead_letter_queue cola_sms.dlq")
        details = audited.locator('td[data-label="Details"]')
        expect(details).to_contain_text(f'"ids": ["{message_id}"]')
        expect(details).to_contain_text('"count": 1')
    context.close()
