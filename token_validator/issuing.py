"""Issuing a token, the same way for the admin API and the command line."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from token_validator import audit
from token_validator.models import Token
from token_validator.moment import Moment
from token_validator.repository import tokens as token_repo
from token_validator.token_strings import Kind


def issue(
    session: Session,
    *,
    kind: Kind,
    owner_id: int,
    actions: str,
    restriction: str,
    quota: int | None,
    expires_at: datetime | None,
    name: str | None,
    actor: str,
    client_ip: str | None,
    moment: Moment,
) -> tuple[str, Token]:
    """A new token (plaintext, row); the audit trail names it by prefix, never by value."""
    plaintext, token = token_repo.create(
        session,
        kind=kind,
        owner_id=owner_id,
        actions=actions,
        restriction=restriction,
        quota=quota,
        expires_at=expires_at,
        name=name,
        now=moment.now,
    )
    audit.record(
        session,
        at=moment.now,
        actor=actor,
        action="token.create",
        target_type="token",
        target_id=token.id,
        details={
            "prefix": token.prefix,
            "kind": kind,
            "owner_id": owner_id,
            "actions": actions,
            "restriction": restriction,
            "limit": quota,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        client_ip=client_ip,
    )
    return plaintext, token
