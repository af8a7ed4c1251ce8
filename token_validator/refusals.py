"""Every refusal is stored: when, which token (if known), its prefix, the action, the code, the
caller's IP and the request id. A presented value without a token's shape (random strings, a
flood of them) is counted instead: one row per client address, action and minute. Refusals
older than REFUSAL_RETENTION_DAYS are forgotten (`prune`, run by the validator itself)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select, update

from token_validator.db import Database, is_postgres
from token_validator.models import Refusal

MALFORMED_CODE = "invalid_token"


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


def record_malformed(db: Database, *, at: datetime, action: str, client_ip: str | None, request_id: str | None) -> None:
    """`invalid_token` for something without a token's shape: added to the row of this client,
    action and minute (its `at` and `request_id` are the first one's), or a new row."""
    action, client_ip = action[:64], client_ip[:64] if client_ip else None
    minute = at.replace(second=0, microsecond=0)
    same = (
        Refusal.token_id.is_(None),
        Refusal.prefix.is_(None),
        Refusal.code == MALFORMED_CODE,
        Refusal.action == action,
        Refusal.client_ip.is_(None) if client_ip is None else Refusal.client_ip == client_ip,
        Refusal.at >= minute,
        Refusal.at < minute + timedelta(minutes=1),
    )
    with db.engine.begin() as connection:
        if is_postgres(db.engine):
            # Two first refusals of a minute would both find no row and insert one each; on
            # SQLite every transaction holds the write lock from BEGIN already.
            connection.execute(select(func.pg_advisory_xact_lock(_lock_key(client_ip, action, minute))))
        counted = connection.execute(update(Refusal).where(*same).values(count=Refusal.count + 1))
        if not counted.rowcount:
            connection.execute(
                insert(Refusal).values(
                    at=at,
                    token_id=None,
                    prefix=None,
                    action=action,
                    code=MALFORMED_CODE,
                    client_ip=client_ip,
                    request_id=request_id[:128] if request_id else None,
                    count=1,
                )
            )


def _lock_key(client_ip: str | None, action: str, minute: datetime) -> int:
    named = f"cartero.refusals\n{client_ip}\n{action}\n{minute.isoformat()}".encode()
    return int.from_bytes(hashlib.sha256(named).digest()[:8], "big", signed=True)


def prune(engine: Engine, now: datetime, keep: timedelta) -> int:
    """Forget refusals older than `keep`; how many rows went."""
    with engine.begin() as connection:
        result = connection.execute(delete(Refusal).where(Refusal.at < now - keep))
    return int(result.rowcount or 0)
