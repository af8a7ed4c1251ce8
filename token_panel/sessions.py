"""The panel's cookies: the session (the validator's session id and the CSRF token) and flashes.

The session cookie holds `{sid, csrf, exp}` signed with PANEL_SECRET_KEY, so it cannot be forged
or altered. `sid` is the id of a session kept by the validator (`POST /v1/admin/sessions`), and
only the validator says whether it is still live and whose it is: the panel asks on every request
(`deps.checked_session`), so a sign-out, a new password or a deleted admin ends it in every panel
process, restarts included. The admin's name is never read from the cookie. `exp` is the
validator's end of the session (for a visitor not signed in, a few hours): past it the cookie is
dropped without asking.
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
# How long the CSRF token of a visitor not signed in (the sign-in form's) stays good.
VISITOR_SECONDS = 8 * 3600


@dataclass(frozen=True)
class PanelSession:
    csrf: str
    expires: float  # Unix time: the cookie is worth nothing after it
    sid: str | None = None  # the validator's session id, once signed in
    user: str | None = None  # the admin, as the validator answered for `sid` during this request

    @classmethod
    def anonymous(cls, now: datetime) -> PanelSession:
        expires = (now + timedelta(seconds=VISITOR_SECONDS)).timestamp()
        return cls(csrf=secrets.token_urlsafe(32), expires=expires)

    @classmethod
    def signed_in(cls, sid: str, user: str, expires_at: datetime) -> PanelSession:
        """A new CSRF token at sign-in, so nothing seen before it is worth anything after."""
        return cls(csrf=secrets.token_urlsafe(32), expires=expires_at.timestamp(), sid=sid, user=user)

    def of(self, user: str) -> PanelSession:
        return replace(self, user=user)

    def ended(self, now: datetime) -> bool:
        return self.expires <= now.timestamp()

    def seconds_left(self, now: datetime) -> int:
        """For the cookie's Max-Age."""
        return max(0, round(self.expires - now.timestamp()))

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


@dataclass(frozen=True)
class Flash:
    """A one-time note shown on the next page: `ok` or `error`."""

    kind: str
    text: str


def _clocked_signer(clock: Clock) -> type[TimestampSigner]:
    """Timestamps from the suite's clock, so tests can move time past a session's end."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock().timestamp())

    return ClockedSigner


class CookieSigner:
    def __init__(self, secret: str, clock: Clock) -> None:
        self._clock = clock
        signer = _clocked_signer(clock)
        self._sessions = URLSafeTimedSerializer(secret, salt="cartero-panel-session", signer=signer)
        self._flashes = URLSafeTimedSerializer(secret, salt="cartero-panel-flash", signer=signer)

    def dump_session(self, session: PanelSession) -> str:
        return self._sessions.dumps({"sid": session.sid, "csrf": session.csrf, "exp": session.expires})

    def load_session(self, cookie: str | None) -> PanelSession | None:
        """The cookie's session if it is genuine and not past its end; its `user` is not known yet."""
        if not cookie:
            return None
        try:
            data = self._sessions.loads(cookie)
            sid, expires = data["sid"], float(data["exp"])
            session = PanelSession(csrf=str(data["csrf"]), expires=expires, sid=None if sid is None else str(sid))
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        return None if session.ended(self._clock()) else session

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
