"""What the HTML forms post, read into the admin API's bodies; pure functions, errors per field."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

# What a token may be allowed to do (the validator's known actions; it refuses any other).
ACTIONS = ("sms.send", "email.send")
ALL_ACTIONS = "*"
KINDS = ("application", "group", "user")
RESTRICTIONS = ("unlimited", "max_uses", "monthly")
MAX_LIMIT = 1_000_000_000
RATE_PERS = ("second", "minute")
MAX_RATE = 1_000_000
NAME_MAX = 100


class Invalid(Exception):
    """Field name → what is wrong with it, said for the person filling in the form."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def text(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def owner_name(value: str, field_name: str = "name") -> str:
    if not value:
        raise Invalid({field_name: "Enter a name."})
    if len(value) > NAME_MAX:
        raise Invalid({field_name: f"Use at most {NAME_MAX} characters."})
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise Invalid({field_name: "Control characters are not allowed."})
    return value


def whole_number(value: str, field_name: str, *, minimum: int = 1, maximum: int = MAX_LIMIT) -> int:
    if not value.isdigit() or not minimum <= int(value) <= maximum:
        raise Invalid({field_name: f"Enter a whole number from {minimum} to {maximum:,}."})
    return int(value)


def restriction(kind: str, limit: str) -> dict[str, Any]:
    """The API's `{"type": …, "limit": …}`; `limit` is read only when the type needs one."""
    if kind not in RESTRICTIONS:
        raise Invalid({"restriction": "Choose unlimited, max uses or monthly."})
    if kind == "unlimited":
        return {"type": "unlimited"}
    return {"type": kind, "limit": whole_number(limit, "limit")}


def rate(limit: str, per: str) -> dict[str, Any] | None:
    """The API's `{"limit": N, "per": "second" | "minute"}`; None (no rate) when no limit is typed."""
    if not limit:
        return None
    if per not in RATE_PERS:
        raise Invalid({"rate_per": "Choose per second or per minute."})
    return {"limit": whole_number(limit, "rate_limit", maximum=MAX_RATE), "per": per}


def local_instant(value: str, zone: ZoneInfo, field_name: str) -> datetime | None:
    """A `datetime-local` input (or a bare date) read in the panel's time zone; None when empty."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Invalid({field_name: "Enter a date and time like 2026-03-31 18:00."}) from None
    return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed


def actions(chosen: list[str]) -> list[str]:
    if ALL_ACTIONS in chosen:
        return [ALL_ACTIONS]
    picked = [a for a in ACTIONS if a in chosen]
    if not picked:
        raise Invalid({"actions": "Choose at least one action."})
    return picked


@dataclass
class TokenForm:
    kind: str = "user"
    owner: str = ""
    actions: list[str] = field(default_factory=lambda: [ALL_ACTIONS])
    restriction: str = "unlimited"
    limit: str = ""
    rate_limit: str = ""
    rate_per: str = "second"
    expires: str = ""
    name: str = ""

    @classmethod
    def read(cls, form: Any) -> TokenForm:
        return cls(
            kind=text(form, "kind"),
            owner=text(form, "owner"),
            actions=[str(a) for a in form.getlist("actions")],
            restriction=text(form, "restriction"),
            limit=text(form, "limit"),
            rate_limit=text(form, "rate_limit"),
            rate_per=text(form, "rate_per"),
            expires=text(form, "expires"),
            name=text(form, "name"),
        )

    def body(self, owner_id: int, zone: ZoneInfo, now: datetime) -> dict[str, Any]:
        """The API's TokenCreate, or Invalid listing every field that is wrong."""
        errors: dict[str, str] = {}
        body: dict[str, Any] = {"kind": self.kind, "owner_id": owner_id}
        for key, read in (
            ("actions", lambda: actions(self.actions)),
            ("restriction", lambda: restriction(self.restriction, self.limit)),
            ("rate", lambda: rate(self.rate_limit, self.rate_per)),
            ("expires_at", lambda: self._expiry(zone, now)),
        ):
            try:
                body[key] = read()
            except Invalid as exc:
                errors.update(exc.errors)
        if len(self.name) > 200:
            errors["name"] = "Use at most 200 characters."
        if errors:
            raise Invalid(errors)
        body["name"] = self.name or None
        if body["rate"] is None:  # no rate limit: the API's default, left out
            del body["rate"]
        return body

    def _expiry(self, zone: ZoneInfo, now: datetime) -> str | None:
        expires = local_instant(self.expires, zone, "expires")
        if expires is not None and expires <= now:
            raise Invalid({"expires": "Choose a moment in the future, or leave it empty."})
        return None if expires is None else expires.isoformat()

    def check_owner(self) -> tuple[str, str]:
        """(kind, owner name), or Invalid."""
        errors = {}
        if self.kind not in KINDS:
            errors["kind"] = "Choose application, group or user."
        try:
            owner_name(self.owner, "owner")
        except Invalid as exc:
            errors.update(exc.errors)
        if errors:
            raise Invalid(errors)
        return self.kind, self.owner


# The events an owner can subscribe a webhook to, as the validator names them.
WEBHOOK_EVENTS = (
    ("message.sent", "Sent: a consumer delivered the message"),
    ("message.retrying", "Retrying: a delivery failed and will be tried again"),
    ("message.failed", "Failed: given up or refused"),
)
URL_MAX = 2000
DESCRIPTION_MAX = 200


@dataclass
class WebhookForm:
    url: str = ""
    events: list[str] = field(default_factory=lambda: [WEBHOOK_EVENTS[0][0], WEBHOOK_EVENTS[2][0]])
    description: str = ""

    @classmethod
    def read(cls, form: Any) -> WebhookForm:
        return cls(
            url=text(form, "url"),
            events=[str(e) for e in form.getlist("events")],
            description=text(form, "description"),
        )

    def body(self, owner_type: str, owner_id: int) -> dict[str, Any]:
        """The API's WebhookCreate, or Invalid listing every field that is wrong. Where the URL
        points is for the validator to judge; here only that one was typed."""
        errors: dict[str, str] = {}
        if not self.url:
            errors["url"] = "Enter the URL to post to, like https://example.com/hooks/cartero."
        elif len(self.url) > URL_MAX:
            errors["url"] = f"Use at most {URL_MAX} characters."
        known = [name for name, _ in WEBHOOK_EVENTS]
        events = [name for name in known if name in self.events]
        if not events:
            errors["events"] = "Choose at least one event."
        if len(self.description) > DESCRIPTION_MAX:
            errors["description"] = f"Use at most {DESCRIPTION_MAX} characters."
        elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in self.description):
            errors["description"] = "Control characters are not allowed."
        if errors:
            raise Invalid(errors)
        body: dict[str, Any] = {"owner_type": owner_type, "owner_id": owner_id, "url": self.url, "events": events}
        if self.description:
            body["description"] = self.description
        return body
