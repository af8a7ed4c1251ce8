"""Bearer tokens at the sender: reading the header, and turning the validator's verdict into HTTP."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fastapi import Request

from cartero_common.http import Problem
from sender.validator_client import Verdict

MAX_TOKEN_LENGTH = 256
MAX_IDEMPOTENCY_KEY = 255
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")

# docs/design.md §4: each refusal code and its status.
REFUSAL_STATUS = {
    "missing_token": 401,
    "invalid_token": 401,
    "token_revoked": 401,
    "token_expired": 401,
    "subject_disabled": 403,
    "action_forbidden": 403,
    "usage_exhausted": 403,
    "monthly_quota_exhausted": 429,
    "rate_limited": 429,
}
_DETAIL = {
    "missing_token": "Send the token as 'Authorization: Bearer <token>'.",
    "invalid_token": "The token is not valid.",
    "token_revoked": "The token has been revoked.",
    "token_expired": "The token has expired.",
    "subject_disabled": "The token's owner is disabled.",
    "action_forbidden": "The token may not do this.",
    "usage_exhausted": "The token has no uses left.",
    "monthly_quota_exhausted": "The monthly quota is spent; it renews at the start of next month.",
    "rate_limited": "Too many requests for this token's rate limit; try again after Retry-After seconds.",
}
# Refusals that end at a known instant: Retry-After = the validator's `reset_in` (seconds, rounded up).
_RETRY_LATER = {"monthly_quota_exhausted", "rate_limited"}


def _unauthorized(code: str) -> Problem:
    # RFC 6750 §3: a 401 names the scheme, and why when a token was presented.
    challenge = 'Bearer realm="cartero"' + ("" if code == "missing_token" else ', error="invalid_token"')
    return Problem(401, code, _DETAIL[code], headers={"WWW-Authenticate": challenge})


def bearer_token(request: Request) -> str:
    """The presented token; 401 `missing_token` without one, `invalid_token` if it cannot be one
    (another scheme, spaces, control or non-ASCII characters, longer than any token)."""
    header = request.headers.get("authorization")
    if header is None or not header.strip():
        raise _unauthorized("missing_token")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("missing_token")
    if len(token) > MAX_TOKEN_LENGTH or not _VISIBLE_ASCII.fullmatch(token):
        raise _unauthorized("invalid_token")
    return token


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not _VISIBLE_ASCII.fullmatch(key):
        raise Problem(
            422,
            "invalid_request",
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            errors=[{"field": "Idempotency-Key", "message": "1 to 255 visible ASCII characters"}],
        )
    return key


def fingerprint(path: str, fields: dict[str, Any]) -> str:
    """What a request asks for: the same key with another request is a client error."""
    canonical = json.dumps({"path": path, "fields": fields}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def rate_limit_headers(verdict: Verdict) -> dict[str, str]:
    """RateLimit-* for a limited token: of the limit with fewest uses left, quota or rate (the
    validator chooses); Reset only where the limit renews (a month, a rate's window)."""
    if verdict.limit is None or verdict.remaining is None:
        return {}
    headers = {"RateLimit-Limit": str(verdict.limit), "RateLimit-Remaining": str(verdict.remaining)}
    if verdict.reset_in is not None:
        headers["RateLimit-Reset"] = str(verdict.reset_in)
    return headers


def refusal(verdict: Verdict) -> Problem:
    if verdict.idempotency == "in_progress":
        return Problem(409, "idempotency_in_progress", "A request with this Idempotency-Key is still being handled.")
    if verdict.idempotency == "mismatch":
        return Problem(
            422, "idempotency_key_mismatch", "This Idempotency-Key was used with a different request in the last 24 h."
        )
    status = REFUSAL_STATUS.get(verdict.code)
    if status is None:  # fail closed on a code this sender does not know
        return Problem(503, "validator_unavailable", "The token could not be checked; nothing was queued.")
    if status == 401:
        return _unauthorized(verdict.code)
    headers = rate_limit_headers(verdict)
    if verdict.code in _RETRY_LATER and verdict.reset_in is not None:
        headers["Retry-After"] = str(max(1, verdict.reset_in))
    return Problem(status, verdict.code, _DETAIL[verdict.code], headers=headers)
