"""The validator's tables. Counters (`restriction`, `quota`, `used`, `period`) live on the row they
limit, tokens and groups alike, so a spend is one conditional UPDATE of that row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cartero_common.db import new_metadata

NAME = 100
PREFIX = 16
ACTIONS = 500


class Base(DeclarativeBase):
    metadata = new_metadata()


def _id() -> Mapped[int]:
    return mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)


def _when(nullable: bool = False) -> Mapped[Any]:
    return mapped_column(DateTime(timezone=True), nullable=nullable)


class Counter:
    """A quota on the row: `unlimited`, `max_uses` (lifetime) or `monthly` (`used` counts `period`,
    a `YYYYMM` month in TIMEZONE; a new month resets it lazily, in the statement that spends).

    Each spend updates the row; on PostgreSQL the tables that hold counters leave a fifth of each
    page free for those updates (migration 0007, fillfactor 80)."""

    restriction: Mapped[str] = mapped_column(String(16), default="unlimited", server_default="unlimited")
    quota: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    period: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Application(Base):
    __tablename__ = "applications"
    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _when()


class Group(Counter, Base):
    """A user group. Its own quota (if any) is shared by its group tokens and its members' user tokens."""

    __tablename__ = "groups"
    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _when()


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _when()


class Membership(Base):
    __tablename__ = "group_members"
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    __table_args__ = (Index("ix_group_members_user_id", "user_id"),)


class Token(Counter, Base):
    """Only the SHA-256 `digest` of a token and its visible `prefix` are kept."""

    __tablename__ = "tokens"
    id: Mapped[int] = _id()
    kind: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(PREFIX))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), nullable=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"), nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    actions: Mapped[str] = mapped_column(String(ACTIONS))
    expires_at: Mapped[datetime | None] = _when(nullable=True)
    revoked_at: Mapped[datetime | None] = _when(nullable=True)
    created_at: Mapped[datetime] = _when()
    last_used_at: Mapped[datetime | None] = _when(nullable=True)
    __table_args__ = (
        CheckConstraint(
            "(kind = 'application' AND application_id IS NOT NULL AND group_id IS NULL AND user_id IS NULL)"
            " OR (kind = 'group' AND group_id IS NOT NULL AND application_id IS NULL AND user_id IS NULL)"
            " OR (kind = 'user' AND user_id IS NOT NULL AND application_id IS NULL AND group_id IS NULL)",
            name="one_owner",
        ),
        Index("ix_tokens_prefix", "prefix"),
        Index("ix_tokens_application_id", "application_id"),
        Index("ix_tokens_group_id", "group_id"),
        Index("ix_tokens_user_id", "user_id"),
    )


class Usage(Base):
    """One counted use: what a refund gives back, and what usage statistics add up."""

    __tablename__ = "usages"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"))
    cost: Mapped[int] = mapped_column(Integer)
    spent_at: Mapped[datetime] = _when()
    day: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD in TIMEZONE
    period: Mapped[int] = mapped_column(Integer)  # YYYYMM in TIMEZONE
    group_ids: Mapped[str] = mapped_column(String(500), default="")  # limited groups also spent from
    refunded_at: Mapped[datetime | None] = _when(nullable=True)
    # Set while the sender could not learn whether the broker took the message (no confirm in
    # time, or the connection dropped with the publish in flight): the use stays counted until
    # it is settled, as delivered or refunded (`token_validator.reconcile`).
    message_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    unconfirmed_at: Mapped[datetime | None] = _when(nullable=True)
    __table_args__ = (
        Index("ix_usages_token_id_day", "token_id", "day"),
        Index("ix_usages_day", "day"),
        Index("ix_usages_unconfirmed_at", "unconfirmed_at"),
    )


class Refusal(Base):
    __tablename__ = "refusals"
    id: Mapped[int] = _id()
    at: Mapped[datetime] = _when()
    token_id: Mapped[int | None] = mapped_column(ForeignKey("tokens.id", ondelete="SET NULL"), nullable=True)
    prefix: Mapped[str | None] = mapped_column(String(PREFIX), nullable=True)
    action: Mapped[str] = mapped_column(String(64))
    code: Mapped[str] = mapped_column(String(40))
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # How many refusals the row stands for: values without a token's shape are counted on one
    # row per client address, action and minute (`refusals.record_malformed`), others are 1.
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    __table_args__ = (
        Index("ix_refusals_at", "at"),
        Index("ix_refusals_token_id_at", "token_id", "at"),
        Index("ix_refusals_code_at", "code", "at"),
        Index("ix_refusals_client_ip_at", "client_ip", "at"),
    )


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = _id()
    at: Mapped[datetime] = _when()
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (Index("ix_audit_events_at", "at"), Index("ix_audit_events_actor_at", "actor", "at"))


class Admin(Base):
    __tablename__ = "admins"
    id: Mapped[int] = _id()
    username: Mapped[str] = mapped_column(String(NAME), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _when()
    last_sign_in_at: Mapped[datetime | None] = _when(nullable=True)
    # A panel session begun before this instant has ended (`panel_sessions.live`).
    password_changed_at: Mapped[datetime] = _when()


class PanelSession(Base):
    """A panel sign-in. The panel's cookie holds the id; only its SHA-256 `digest` is kept here,
    so whoever reads the database cannot act as a signed-in admin."""

    __tablename__ = "panel_sessions"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admins.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = _when()
    expires_at: Mapped[datetime] = _when()
    revoked_at: Mapped[datetime | None] = _when(nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (
        Index("ix_panel_sessions_admin_id", "admin_id"),
        Index("ix_panel_sessions_expires_at", "expires_at"),
    )


class SignInAttempt(Base):
    """A panel sign-in that failed, or is being checked right now (`panel_sessions.begin_attempt`):
    what the sign-in throttle counts, per (username, client address) and per client address."""

    __tablename__ = "sign_in_attempts"
    id: Mapped[int] = _id()
    username: Mapped[str] = mapped_column(String(NAME))  # as typed, lower-cased
    client_ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = _when()
    __table_args__ = (
        Index("ix_sign_in_attempts_client_ip_at", "client_ip", "at"),
        Index("ix_sign_in_attempts_username_client_ip_at", "username", "client_ip", "at"),
        Index("ix_sign_in_attempts_at", "at"),
    )


class IdempotencyKey(Base):
    """A sender's first answer for (token, Idempotency-Key). `pending` until the broker confirmed."""

    __tablename__ = "idempotency_keys"
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"), primary_key=True)
    key_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    usage_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = _when()
    claimed_at: Mapped[datetime] = _when()
    __table_args__ = (
        Index("ix_idempotency_keys_usage_id", "usage_id"),
        Index("ix_idempotency_created_at", "created_at"),
    )


class WebhookEndpoint(Base):
    """Where an owner wants its messages' outcomes posted. `secret` is kept as given out, since
    every delivery is signed with it; the admin API shows it only when it is made. The owner is
    one of three foreign keys (as on `tokens`), so deleting the owner deletes its endpoints."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = _id()
    owner_type: Mapped[str] = mapped_column(String(16))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id", ondelete="CASCADE"), nullable=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    secret: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _when()
    updated_at: Mapped[datetime] = _when()
    __table_args__ = (
        CheckConstraint(
            "(owner_type = 'application' AND application_id IS NOT NULL AND group_id IS NULL AND user_id IS NULL)"
            " OR (owner_type = 'group' AND group_id IS NOT NULL AND application_id IS NULL AND user_id IS NULL)"
            " OR (owner_type = 'user' AND user_id IS NOT NULL AND application_id IS NULL AND group_id IS NULL)",
            name="one_owner",
        ),
        Index("ix_webhook_endpoints_application_id", "application_id"),
        Index("ix_webhook_endpoints_group_id", "group_id"),
        Index("ix_webhook_endpoints_user_id", "user_id"),
    )


class RateLimit(Base):
    """A token's or a group's rate (`allowance` uses per `per_seconds`: 1 or 60), and the shared
    counter of its current fixed window: `granted` is how much of window `window_index` (Unix
    seconds // `per_seconds`) the validator processes have taken as leases (`rates.leases`),
    `last_grant` what the last lease took. No row: no rate."""

    __tablename__ = "rate_limits"
    id: Mapped[int] = _id()
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("tokens.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), nullable=True, unique=True
    )
    allowance: Mapped[int] = mapped_column(Integer)
    per_seconds: Mapped[int] = mapped_column(Integer)
    window_index: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    granted: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_grant: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    __table_args__ = (
        CheckConstraint("(token_id IS NULL) <> (group_id IS NULL)", name="one_target"),
        CheckConstraint("per_seconds IN (1, 60)", name="per"),
        CheckConstraint("allowance >= 1", name="allowance"),
    )
