"""Who holds a token, without deciding or spending anything: what a sender needs to show a caller
only the messages of its own owner (`POST /v1/identify`)."""

from __future__ import annotations

from dataclasses import dataclass

from token_validator.db import Database
from token_validator.moment import Moment
from token_validator.quota import general
from token_validator.token_strings import digest, kind_of


@dataclass(frozen=True)
class Identity:
    code: str  # ok, invalid_token, token_revoked, token_expired or subject_disabled
    owner_ref: str | None = None
    token_id: int | None = None
    prefix: str | None = None


def identify(db: Database, token: str, moment: Moment) -> Identity:
    """The token's owner if the token may be used now; the first refusal of docs/design.md §6's
    order otherwise. No action is checked (reading a status is no action a token is granted), and
    nothing is written: no use, no refusal."""
    if kind_of(token) is None:
        return Identity("invalid_token")
    hashed = digest(token)
    with db.single() as connection:
        row = general._read_token(connection, hashed)
    early = general._early_refusal(row, hashed, "", moment)
    if row is None or early == "invalid_token":
        return Identity("invalid_token")
    if early is not None and early != "action_forbidden":
        return Identity(early, token_id=row.id, prefix=row.prefix)
    return Identity("ok", owner_ref=f"{row.kind}:{row.owner_id}", token_id=row.id, prefix=row.prefix)
