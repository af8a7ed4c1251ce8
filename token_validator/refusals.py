"""Every refusal is stored: when, which token (if known), its prefix, the action, the code, the
caller's IP and the request id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert

from token_validator.db import Database
from token_validator.models import Refusal


def record(
    db: Database,
    *,
    at: datetime,
    token_id: int | None,
    prefix: str | None,
    action: str,
    code: str,
    client_ip: str | None,
    request_id: str | None,
) -> None:
    with db.single() as connection:
        connection.execute(
            insert(Refusal).values(
                at=at,
                token_id=token_id,
                prefix=prefix,
                action=action[:64],
                code=code,
                client_ip=client_ip[:64] if client_ip else None,
                request_id=request_id[:128] if request_id else None,
            )
        )
