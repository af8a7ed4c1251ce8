"""Shared keys between services (`Authorization: Bearer <key>`): reading and comparing them."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

# The shortest shared key a service accepts to serve with: a key that short can still be guessed
# only by asking the service itself, one request at a time.
MIN_KEY_LENGTH = 16


def bearer(headers: Mapping[str, str]) -> str | None:
    """The credential of an `Authorization: Bearer …` header, or None."""
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None


def credential_matches(given: str | None, expected: str) -> bool:
    """Constant time, and blind to length: both sides are hashed before `compare_digest`. An
    empty `expected` matches nothing."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())
