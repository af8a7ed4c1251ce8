"""Token strings: how they are made, named and recognised. Pure functions, no database.

A token is `<kind prefix>_<43 url-safe characters from secrets>` (256 random bits). Only its
SHA-256 digest and its visible prefix (kind plus the first 4 random characters) are stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Literal

Kind = Literal["application", "group", "user"]
KINDS: tuple[Kind, ...] = ("application", "group", "user")
KIND_PREFIX: dict[str, str] = {"application": "app", "group": "grp", "user": "usr"}
PREFIX_KIND: dict[str, Kind] = {"app": "application", "grp": "group", "usr": "user"}

ALL_ACTIONS = "*"
# What a token can be allowed to do; a new sender endpoint adds its action here.
KNOWN_ACTIONS = frozenset({"sms.send", "email.send"})

MAX_TOKEN_LENGTH = 256
_SECRET_BYTES = 32
_VISIBLE = 4
_WELL_FORMED = re.compile(r"(app|grp|usr)_[A-Za-z0-9_-]{32,200}")


def new_token(kind: Kind) -> str:
    return f"{KIND_PREFIX[kind]}_{secrets.token_urlsafe(_SECRET_BYTES)}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", errors="surrogatepass")).hexdigest()


def visible_prefix(token: str) -> str:
    """`app_x7Kq`: how lists, logs and refusals name a token."""
    return token[: len("app_") + _VISIBLE]


def presented_prefix(token: str) -> str | None:
    """The visible prefix of something presented as a token, only if it has a token's shape, so a
    stray secret pasted into the header is never stored, even in part."""
    return visible_prefix(token) if _WELL_FORMED.fullmatch(token) else None


def kind_of(token: str) -> Kind | None:
    return PREFIX_KIND.get(token[:3]) if _WELL_FORMED.fullmatch(token) else None


def normalize_actions(actions: list[str] | str) -> str:
    """Sorted, comma-separated known actions, or `*`; ValueError names an unknown one."""
    items = [a.strip() for a in (actions.split(",") if isinstance(actions, str) else actions)]
    items = [a for a in items if a]
    if not items:
        raise ValueError("at least one action is needed")
    if ALL_ACTIONS in items:
        if len(items) > 1:
            raise ValueError("'*' already allows every action; list it alone")
        return ALL_ACTIONS
    unknown = sorted(set(items) - KNOWN_ACTIONS)
    if unknown:
        raise ValueError(f"unknown action {unknown[0]!r}; known: {', '.join(sorted(KNOWN_ACTIONS))} or '*'")
    return ",".join(sorted(set(items)))


def allows(actions: str, action: str) -> bool:
    return actions == ALL_ACTIONS or action in actions.split(",")


def action_list(actions: str) -> list[str]:
    return [ALL_ACTIONS] if actions == ALL_ACTIONS else actions.split(",")
