"""Command-line operations: the same things the admin API does, for scripts and the first start."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy.orm import Session

from cartero_common.clock import Clock
from cartero_common.db import make_sessionmaker
from token_validator import audit
from token_validator.audit import CLI_ACTOR
from token_validator.config import Settings
from token_validator.counters import MAX_QUOTA
from token_validator.db import make_validator_engine
from token_validator.issuing import issue
from token_validator.models import Application, Group, Token
from token_validator.moment import Moment
from token_validator.passwords import MIN_LENGTH, new_password
from token_validator.repository import admins, owners
from token_validator.repository import rates as rate_repo
from token_validator.repository.owners import OWNER_MODELS, OwnerModel
from token_validator.schemas import MAX_RATE, USERNAME_MAX, AdminCreate, OwnerCreate, RateIn, RestrictionIn
from token_validator.token_strings import ALL_ACTIONS, Kind, normalize_actions

DEMO_APPLICATION = "demo"
FIRST_ADMIN = "admin"


class CommandError(Exception):
    """A bad argument, said in a sentence (the command exits 2)."""


def _sessions(settings: Settings) -> Any:
    return make_sessionmaker(make_validator_engine(settings.database_url))


def _owner(session: Session, model: OwnerModel, name: str, moment: Moment) -> Any:
    """The owner named `name`, created (and audited) if missing."""
    try:
        OwnerCreate(name=name)
    except ValidationError:
        raise CommandError(f"{name!r} is not a valid name (1-100 characters, no control characters)") from None
    found = owners.by_name(session, model, name)
    if found is not None:
        return found
    kind = model.__tablename__[:-1]
    created = owners.create(session, model, name=name, now=moment.now)
    audit.record(
        session,
        at=moment.now,
        actor=CLI_ACTOR,
        action=f"{kind}.create",
        target_type=kind,
        target_id=created.id,
        details={"name": name},
    )
    return created


def _expiry(text: str | None, zone: ZoneInfo, moment: Moment) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--expires {text!r} is not an ISO-8601 date or date-time") from None
    expires = (value.replace(tzinfo=zone) if value.tzinfo is None else value).astimezone(UTC)
    if expires <= moment.now:
        raise CommandError("--expires is in the past")
    return expires


def _rate(text: str | None) -> RateIn | None:
    """`--rate 100/second` (or `/minute`)."""
    if text is None:
        return None
    count, _, per = text.partition("/")
    try:
        return RateIn(limit=int(count), per=per)  # type: ignore[arg-type]
    except (ValueError, ValidationError):
        raise CommandError(f"--rate {text!r}: N/second or N/minute, N from 1 to {MAX_RATE}") from None


def _audit_rate(session: Session, moment: Moment, target: str, target_id: int, details: dict[str, Any]) -> None:
    audit.record(
        session,
        at=moment.now,
        actor=CLI_ACTOR,
        action=f"{target}.rate",
        target_type=target,
        target_id=target_id,
        details=details,
    )


def set_rate(settings: Settings, args: argparse.Namespace, clock: Clock) -> int:
    """`set-rate (--token-id ID | --group NAME) (--rate N/second|N/minute | --clear)`."""
    moment = Moment.at(clock(), ZoneInfo(settings.timezone))
    rate = None if args.clear else _rate(args.rate)
    value = None if rate is None else (rate.limit, rate.per)
    details: dict[str, Any] = {"rate": None if rate is None else rate.model_dump()}
    with _sessions(settings).begin() as session:
        if args.group is not None:
            group = owners.by_name(session, Group, args.group)
            if group is None:
                raise CommandError(f"there is no group named {args.group!r}")
            rate_repo.set_rate(session, "group", group.id, value)
            _audit_rate(session, moment, "group", group.id, details)
            what = f"group {args.group!r}"
        else:
            token = session.get(Token, args.token_id)
            if token is None:
                raise CommandError(f"there is no token with id {args.token_id}")
            rate_repo.set_rate(session, "token", token.id, value)
            _audit_rate(session, moment, "token", token.id, {"prefix": token.prefix, **details})
            what = f"token {token.prefix}… (id {token.id})"
    print(f"{what}: " + ("no rate limit" if rate is None else f"at most {rate.limit} per {rate.per}"))
    return 0


def create_token(settings: Settings, args: argparse.Namespace, clock: Clock) -> int:
    zone = ZoneInfo(settings.timezone)
    moment = Moment.at(clock(), zone)
    kind: Kind = args.kind
    try:
        actions = normalize_actions(args.actions)
    except ValueError as exc:
        raise CommandError(f"--actions: {exc}") from None
    try:
        if args.max_uses is not None:
            restriction = RestrictionIn(type="max_uses", limit=args.max_uses)
        elif args.monthly is not None:
            restriction = RestrictionIn(type="monthly", limit=args.monthly)
        else:
            restriction = RestrictionIn(type="unlimited")
    except ValidationError:
        raise CommandError(f"--max-uses / --monthly must be 1 to {MAX_QUOTA}") from None
    if args.group and kind != "user":
        raise CommandError("--group is for user tokens (a group token's owner is the group)")
    rate = _rate(args.rate)
    expires_at = _expiry(args.expires, zone, moment)
    model = OWNER_MODELS[kind]
    with _sessions(settings).begin() as session:
        owner = _owner(session, model, args.owner, moment)
        if args.group:
            group = _owner(session, Group, args.group, moment)
            if owners.add_member(session, group.id, owner.id):
                audit.record(
                    session,
                    at=moment.now,
                    actor=CLI_ACTOR,
                    action="group.member_add",
                    target_type="group",
                    target_id=group.id,
                    details={"user_id": owner.id},
                )
        plaintext, token = issue(
            session,
            kind=kind,
            owner_id=owner.id,
            actions=actions,
            restriction=restriction.type,
            quota=restriction.limit,
            expires_at=expires_at,
            name=args.name,
            actor=CLI_ACTOR,
            client_ip=None,
            moment=moment,
        )
        if rate is not None:
            rate_repo.set_rate(session, "token", token.id, (rate.limit, rate.per))
            _audit_rate(session, moment, "token", token.id, {"prefix": token.prefix, "rate": rate.model_dump()})
        summary = f"created {kind} token {token.prefix}… (id {token.id}) for {args.owner!r}, actions {actions}"
    print(summary)
    print(plaintext)
    return 0


def create_admin(settings: Settings, username: str, password_line: str, clock: Clock) -> int:
    password = password_line.rstrip("\r\n")
    try:
        AdminCreate(username=username, password=password)
    except ValidationError:
        raise CommandError(
            f"need a username of at most {USERNAME_MAX} characters A-Z a-z 0-9 . _ @ - and a password of at least"
            f" {MIN_LENGTH} characters on stdin"
        ) from None
    moment = Moment.at(clock(), ZoneInfo(settings.timezone))
    with _sessions(settings).begin() as session:
        if admins.by_username(session, username) is not None:
            raise CommandError(f"there is already an admin named {username!r}")
        admins.create(session, username=username, password=password, now=moment.now)
        audit.record(
            session, at=moment.now, actor=CLI_ACTOR, action="admin.create", target_type="admin", target_id=username
        )
    print(f"created admin {username!r}")
    return 0


def first_run(settings: Settings, output: Path, clock: Clock) -> int:
    """The first start only (no admin yet): an admin with a random password and an unlimited demo
    application token for every action, printed once and kept in `output` (mode 600)."""
    moment = Moment.at(clock(), ZoneInfo(settings.timezone))
    with _sessions(settings).begin() as session:
        if admins.count(session) > 0:
            print(f"first run already done; the first admin and demo token are in {output}")
            return 0
        password = new_password()
        admins.create(session, username=FIRST_ADMIN, password=password, now=moment.now)
        audit.record(
            session,
            at=moment.now,
            actor=CLI_ACTOR,
            action="admin.create",
            target_type="admin",
            target_id=FIRST_ADMIN,
            details={"first_run": True},
        )
        demo = _owner(session, Application, DEMO_APPLICATION, moment)
        plaintext, _ = issue(
            session,
            kind="application",
            owner_id=demo.id,
            actions=ALL_ACTIONS,
            restriction="unlimited",
            quota=None,
            expires_at=None,
            name="demo token (first run)",
            actor=CLI_ACTOR,
            client_ip=None,
            moment=moment,
        )
        content = f"ADMIN_USERNAME={FIRST_ADMIN}\nADMIN_PASSWORD={password}\nDEMO_TOKEN={plaintext}\n"
        _write_private(output, content)
    print(f"First run: an admin account and a demo token (kept in {output}, readable only by you):")
    print(content, end="")
    return 0


def _write_private(path: Path, content: str) -> None:
    """Written with mode 600 from the start, so the secrets are never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(content)
