"""Admin sessions in signed cookies: who is signed in, the CSRF token, and when it ends.

The cookie holds `{sid, csrf, user}` signed with PANEL_SECRET_KEY and timestamped, so it cannot be
forged and stops working after PANEL_SESSION_MINUTES even if a browser keeps it. Signing out
remembers the session id until it would have expired anyway, so a copied cookie dies with it.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from itsdangerous import BadSignature, TimestampSigner, URLSafeTimedSerializer

from cartero_common.clock import Clock

SESSION_COOKIE = "cartero_panel"
FLASH_COOKIE = "cartero_panel_flash"
CSRF_FIELD = "csrf"
FLASH_SECONDS = 300
_MAX_SIGNED_OUT = 100_000


@dataclass(frozen=True)
class PanelSession:
    sid: str
    csrf: str
    user: str | None = None

    @classmethod
    def anonymous(cls) -> PanelSession:
        return cls(sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(32))

    def signed_in(self, user: str) -> PanelSession:
        """A new id and CSRF token at sign-in, so nothing seen before it is worth anything after."""
        return replace(PanelSession.anonymous(), user=user)

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


@dataclass(frozen=True)
class Flash:
    """A one-time note shown on the next page: `ok` or `error`."""

    kind: str
    text: str


class SignedOut:
    """Session ids signed out before their cookie expired, forgotten once it would have."""

    def __init__(self, clock: Clock, lifetime: timedelta) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._until: dict[str, datetime] = {}

    def add(self, sid: str) -> None:
        now = self._clock()
        self._until = {s: t for s, t in self._until.items() if t > now}
        if len(self._until) >= _MAX_SIGNED_OUT:
            self._until.pop(next(iter(self._until)))
        self._until[sid] = now + self._lifetime

    def __contains__(self, sid: object) -> bool:
        until = self._until.get(str(sid))
        return until is not None and until > self._clock()


def _clocked_signer(clock: Clock) -> type[TimestampSigner]:
    """Timestamps from the suite's clock, so tests can move time past a session's end."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock().timestamp())

    return ClockedSigner


class CookieSigner:
    def __init__(self, secret: str, max_age_seconds: int, clock: Clock) -> None:
        self.max_age = max_age_seconds
        signer = _clocked_signer(clock)
        self._sessions = URLSafeTimedSerializer(secret, salt="cartero-panel-session", signer=signer)
        self._flashes = URLSafeTimedSerializer(secret, salt="cartero-panel-flash", signer=signer)

    def dump_session(self, session: PanelSession) -> str:
        return self._sessions.dumps({"sid": session.sid, "csrf": session.csrf, "user": session.user})

    def load_session(self, cookie: str | None) -> PanelSession | None:
        if not cookie:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=self.max_age)
            user = data["user"]
            return PanelSession(sid=str(data["sid"]), csrf=str(data["csrf"]), user=None if user is None else str(user))
        except (BadSignature, KeyError, TypeError):
            return None

    def dump_flash(self, flash: Flash) -> str:
        return self._flashes.dumps([flash.kind, flash.text])

    def load_flash(self, cookie: str | None) -> Flash | None:
        if not cookie:
            return None
        try:
            kind, text = self._flashes.loads(cookie, max_age=FLASH_SECONDS)
        except (BadSignature, ValueError, TypeError):
            return None
        return Flash(str(kind), str(text))
