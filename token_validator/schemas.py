"""Admin API bodies and answers (`XCreate` / `XUpdate` / `XPublic`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic import Strict as PydanticStrict

from token_validator.counters import MAX_QUOTA, Restriction
from token_validator.passwords import MAX_LENGTH as PASSWORD_MAX
from token_validator.passwords import MIN_LENGTH as PASSWORD_MIN
from token_validator.token_strings import Kind, normalize_actions

T = TypeVar("T")

# Names are shown in the panel and written to logs: no control characters.
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
]
# An admin's name is also the audit trail's `target_id` (64 characters) of what is done to the account.
USERNAME_MAX = 64
Username = Annotated[str, StringConstraints(min_length=1, max_length=USERNAME_MAX, pattern=r"^[A-Za-z0-9._@-]+$")]
Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
TokenStatus = Literal["active", "revoked", "expired"]


def _no_nul(value: Any) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            # PostgreSQL text cannot hold NUL: refused here, never a 500 from the database.
            raise ValueError("must not contain NUL (\\x00) characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _no_nul(item)


def no_nul(value: T) -> T:
    """`value` unchanged if no string in it (nested in lists and dicts too) holds a NUL."""
    _no_nul(value)
    return value


class Strict(BaseModel):
    """A request body from outside: no unknown field, no coercion (`"1"` is not 1, `0` is not
    false; JSON's own types only), and no NUL in any string."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul_anywhere(cls, value: Any) -> Any:
        # A nested model checked its own fields already.
        return value if isinstance(value, BaseModel) else no_nul(value)


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_text(value: Any) -> Any:
    # pydantic would also read a number of seconds, even in a string: not a documented form.
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATE.match(value)):
        return value
    raise ValueError("must be an ISO-8601 date and time")


# Strict models take JSON's types only, and JSON has no datetime: an ISO-8601 text is read as one
# (and nothing else, not a number of seconds).
Instant = Annotated[datetime, BeforeValidator(_iso_text), PydanticStrict(False)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    per_page: int


class RestrictionIn(Strict):
    """`{"type": "unlimited"}`, `{"type": "max_uses", "limit": N}` or `{"type": "monthly", "limit": N}`."""

    type: Restriction
    limit: int | None = Field(None, ge=1, le=MAX_QUOTA)

    @model_validator(mode="after")
    def _limit_matches_type(self) -> RestrictionIn:
        if self.type == "unlimited" and self.limit is not None:
            raise ValueError("an unlimited restriction takes no limit")
        if self.type != "unlimited" and self.limit is None:
            raise ValueError(f"a {self.type} restriction needs a limit")
        return self


MAX_RATE = 1_000_000


class RateIn(Strict):
    """At most `limit` spent uses per fixed `second` or `minute` (docs/tokens-and-quotas.md#rate-limits)."""

    limit: int = Field(ge=1, le=MAX_RATE)
    per: Literal["second", "minute"]


class RateChange(Strict):
    """`{"rate": {"limit": 100, "per": "second"}}`, or `{"rate": null}` to take the rate away."""

    rate: RateIn | None


class RatePublic(BaseModel):
    limit: int
    per: Literal["second", "minute"]


class CounterPublic(BaseModel):
    type: Restriction
    limit: int | None
    used: int = Field(description="Uses counted in the current period (lifetime for max_uses and unlimited).")
    remaining: int | None
    reset_at: datetime | None = Field(description="First instant of next month in TIMEZONE (monthly only).")


class OwnerCreate(Strict):
    name: Name
    disabled: bool = False


class GroupCreate(OwnerCreate):
    quota: RestrictionIn = RestrictionIn(type="unlimited")
    rate: RateIn | None = None


class OwnerUpdate(Strict):
    """Rename, disable or enable; omitted fields are left as they are."""

    name: Name | None = None
    disabled: bool | None = None


class Ref(BaseModel):
    id: int
    name: str


class OwnerRef(Ref):
    type: Kind


class ApplicationPublic(BaseModel):
    id: int
    name: str
    disabled: bool
    created_at: datetime
    tokens: int


class GroupPublic(ApplicationPublic):
    quota: CounterPublic
    rate: RatePublic | None = None
    members: int


class UserPublic(ApplicationPublic):
    groups: list[Ref]


class TokenCreate(Strict):
    kind: Kind
    owner_id: int = Field(ge=1)
    actions: list[Annotated[str, StringConstraints(max_length=64)]] = Field(min_length=1, max_length=20)
    restriction: RestrictionIn = RestrictionIn(type="unlimited")
    rate: RateIn | None = None
    expires_at: Instant | None = Field(None, description="ISO-8601; without an offset it is read in TIMEZONE.")
    name: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")] | None = None

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, actions: list[str]) -> list[str]:
        return normalize_actions(actions).split(",")


class TokenPublic(BaseModel):
    id: int
    prefix: str
    kind: Kind
    name: str | None
    owner: OwnerRef
    actions: list[str]
    restriction: CounterPublic
    rate: RatePublic | None = None
    status: TokenStatus
    expires_at: datetime | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="The token itself. Shown this once; only its digest is kept.")


class RemainingChange(Strict):
    """Exactly one of: `set` the uses left in the current period, or `grant` that many more."""

    set: int | None = Field(None, ge=0, le=MAX_QUOTA)
    grant: int | None = Field(None, ge=1, le=MAX_QUOTA)

    @model_validator(mode="after")
    def _exactly_one(self) -> RemainingChange:
        if (self.set is None) == (self.grant is None):
            raise ValueError("give exactly one of 'set' or 'grant'")
        return self


class UsageDay(BaseModel):
    day: str
    uses: int


class DailyUsage(BaseModel):
    token_id: int
    month: str
    total: int
    days: list[UsageDay]


class UsageMonth(BaseModel):
    month: str
    uses: int


class MonthlyUsage(BaseModel):
    token_id: int
    months: list[UsageMonth]


class TokenUses(BaseModel):
    token_id: int
    prefix: str | None
    uses: int


class UsageSummary(BaseModel):
    month: str
    tokens: list[TokenUses]


class RefusalPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    token_id: int | None
    prefix: str | None
    action: str
    code: str
    client_ip: str | None
    request_id: str | None
    count: int = Field(
        description="Refusals the row stands for: values without a token's shape are counted per client "
        "address, action and minute (`at` and `request_id` are the first one's); others are 1."
    )


class AuditPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    details: dict[str, Any]
    client_ip: str | None


class SessionCreate(Strict):
    # Longer than an admin's name may be, so a sign-in with a too long one is still a failed
    # sign-in, audited (then refused with 422), not a bare validation error.
    username: Annotated[str, StringConstraints(max_length=100)]
    password: Annotated[str, StringConstraints(max_length=PASSWORD_MAX)]
    # 64, as the audit trail's `client_ip` (an IPv6 address is at most 45 characters).
    client_address: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        default=None,
        description="The address of the client signing in, as the panel determined it (TRUSTED_PROXIES): "
        "failed sign-ins are counted per address. Without it, the caller's own address is used.",
    )


class SessionPublic(BaseModel):
    id: str = Field(description="The session's id: shown only in this answer; the panel keeps it in its cookie.")
    username: str
    signed_in_at: datetime
    expires_at: datetime


class SessionLive(BaseModel):
    username: str
    signed_in_at: datetime
    expires_at: datetime


class AdminCreate(Strict):
    username: Username
    password: Password


class PasswordChange(Strict):
    password: Password


class AdminPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    username: str
    created_at: datetime
    last_sign_in_at: datetime | None


WebhookEvent = Literal["message.sent", "message.retrying", "message.failed"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ("message.sent", "message.retrying", "message.failed")
WebhookUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
WebhookEvents = Annotated[list[WebhookEvent], Field(min_length=1, max_length=len(WEBHOOK_EVENTS))]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


def _events_in_order(events: list[WebhookEvent]) -> list[WebhookEvent]:
    return [event for event in WEBHOOK_EVENTS if event in events]


class WebhookCreate(Strict):
    owner_type: Kind
    owner_id: int = Field(ge=1, le=2**62)
    url: WebhookUrl
    events: WebhookEvents
    description: Description | None = None

    @field_validator("events")
    @classmethod
    def _ordered(cls, events: list[WebhookEvent]) -> list[WebhookEvent]:
        return _events_in_order(events)


class WebhookUpdate(Strict):
    """Omitted fields are left as they are; `"description": null` clears it."""

    url: WebhookUrl | None = None
    events: WebhookEvents | None = None
    description: Description | None = None
    enabled: bool | None = None

    @field_validator("events")
    @classmethod
    def _ordered(cls, events: list[WebhookEvent] | None) -> list[WebhookEvent] | None:
        return None if events is None else _events_in_order(events)


class WebhookPublic(BaseModel):
    id: int
    owner_type: Kind
    owner_id: int
    owner_ref: str = Field(description="`<kind>:<id>` of the owner, as the sender's `enviado` events name it.")
    owner_name: str
    url: str
    events: list[WebhookEvent]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookPublic):
    secret: str = Field(description="`whsec_<base64>`, the signing secret: shown only here and when it is renewed.")


class WebhookList(BaseModel):
    items: list[WebhookPublic]


class WebhookTarget(BaseModel):
    """What the delivery consumer needs of one endpoint."""

    id: int
    url: str
    events: list[WebhookEvent]
    secret: str
    enabled: bool


class WebhookTargets(BaseModel):
    items: list[WebhookTarget]


DeadLetterQueue = Literal["cola_sms.dlq", "correos.dlq", "logs.dlq"]


class DeadLetterAction(Strict):
    """What the panel did to a DLQ through the dead_letters service, for the audit trail: which
    queue, which messages (their ids as the service answered them) and how many moved."""

    action: Literal["dead_letters.replay", "dead_letters.discard"]
    queue: DeadLetterQueue
    ids: list[Annotated[str, Field(max_length=200)]] = Field(max_length=1000)
    count: int = Field(ge=0, le=10**9)
    all: bool = False
    not_found: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=1000)
    # A replay of more messages than `ids` holds (or of an id longer than 200 characters) is
    # still recorded: the panel sends the first 1000 ids, each cut to 200, `count` for all of
    # them, and says so here.
    ids_truncated: bool = False
    # The broker stopped confirming part-way: `ids` moved, the message after them and the rest
    # stayed in the DLQ.
    unconfirmed: bool = False
