"""Refusals and the audit trail, newest first, with filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from token_validator.models import AuditEvent, Refusal
from token_validator.repository.pages import PageOf, paginate


@dataclass(frozen=True)
class RefusalFilter:
    token_id: int | None = None
    prefix: str | None = None
    code: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def refusals(session: Session, where: RefusalFilter, *, page: int, per_page: int) -> PageOf[Any]:
    query = select(Refusal).order_by(Refusal.at.desc(), Refusal.id.desc())
    if where.token_id is not None:
        query = query.where(Refusal.token_id == where.token_id)
    if where.prefix:
        query = query.where(Refusal.prefix == where.prefix)
    if where.code:
        query = query.where(Refusal.code == where.code)
    if where.since is not None:
        query = query.where(Refusal.at >= where.since)
    if where.until is not None:
        query = query.where(Refusal.at < where.until)
    return paginate(session, query, page=page, per_page=per_page)


def audit_events(session: Session, where: AuditFilter, *, page: int, per_page: int) -> PageOf[Any]:
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if where.actor:
        query = query.where(AuditEvent.actor == where.actor)
    if where.action:
        query = query.where(AuditEvent.action == where.action)
    if where.target_type:
        query = query.where(AuditEvent.target_type == where.target_type)
    if where.target_id:
        query = query.where(AuditEvent.target_id == where.target_id)
    if where.since is not None:
        query = query.where(AuditEvent.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEvent.at < where.until)
    return paginate(session, query, page=page, per_page=per_page)
