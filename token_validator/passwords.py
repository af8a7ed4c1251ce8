"""Admin passwords: scrypt from the standard library, compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# RFC 7914's interactive parameters (N=2^15, r=8, p=1): ~32 MiB and tens of milliseconds a check.
_N, _R, _P, _LEN = 2**15, 8, 1, 32
_MAXMEM = 64 * 1024 * 1024
MIN_LENGTH = 10
MAX_LENGTH = 1024


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=_LEN)


def hash_password(password: str) -> str:
    """`scrypt$N$r$p$salt$hash`, so the parameters can be raised later without breaking old hashes."""
    salt = secrets.token_bytes(16)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(_scrypt(password, salt, _N, _R, _P))}"


# Checked against when the username is unknown, so an unknown name takes as long as a wrong password.
_DUMMY = hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, stored: str | None) -> bool:
    scheme, n, r, p, salt, expected = (stored or _DUMMY).split("$")
    if scheme != "scrypt":
        return False
    computed = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(computed, base64.b64decode(expected)) and stored is not None


def new_password() -> str:
    return secrets.token_urlsafe(18)
