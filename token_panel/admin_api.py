"""The validator's admin API, seen from the panel: one pooled client, the admin credential, the
name of the admin acting (the validator writes it into the audit trail), and the panel's sessions,
which the validator keeps (sign-in, the check on every request, sign-out)."""

from __future__ import annotations

from typing import Any

import httpx

ADMIN_HEADER = "X-Cartero-Admin"
SESSION_HEADER = "X-Cartero-Session"
_LOOKUP_PAGES = 10
PLURAL = {"application": "applications", "group": "groups", "user": "users"}


class ApiUnavailable(Exception):
    """The service did not answer, or answered something that is not its API."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


class ApiError(Exception):
    """A clear refusal from the API: its status, problem `code`, `detail` and field `errors`."""

    def __init__(self, status: int, body: dict[str, Any], retry_after: int | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        self.code = str(body.get("code") or "error")
        self.detail = str(body.get("detail") or "The validator refused the request.")
        self.errors: list[dict[str, str]] = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        self.body = body
        super().__init__(f"{status} {self.code}: {self.detail}")

    def field_errors(self) -> dict[str, str]:
        return {str(e.get("field", "")): str(e.get("message", "invalid")) for e in self.errors}


class AdminApi:
    def __init__(self, url: str, admin_key: str, *, timeout: float = 5.0, transport: Any = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/") + "/v1/admin",
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        actor: str | None,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Any:
        headers = {ADMIN_HEADER: actor} if actor else {}
        if session_id is not None:
            headers[SESSION_HEADER] = session_id
        clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
        try:
            response = await self._client.request(method, path, json=json, params=clean, headers=headers)
        except httpx.HTTPError as exc:
            raise ApiUnavailable("token validator", type(exc).__name__) from None
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            raise ApiUnavailable("token validator", f"HTTP {response.status_code} without JSON") from None
        if response.status_code >= 500 or (isinstance(body, dict) and body.get("code") == "unauthorized"):
            # `unauthorized` means the panel's own credential is wrong: a setup fault, not the admin's.
            raise ApiUnavailable("token validator", f"HTTP {response.status_code} {body.get('code', '')}".strip())
        if response.status_code >= 400:
            wait = response.headers.get("retry-after", "")
            retry_after = int(wait) if wait.isdigit() else None
            raise ApiError(response.status_code, body if isinstance(body, dict) else {}, retry_after)
        return body

    async def sign_in(self, username: str, password: str, client_address: str | None) -> dict[str, Any]:
        """A new session (`id`, `username`, `expires_at`); the validator counts failures per
        `client_address` and answers 429 once there are too many."""
        body = {"username": username, "password": password, "client_address": client_address}
        result: dict[str, Any] = await self.call("POST", "/sessions", actor=None, json=body)
        return result

    async def live_session(self, session_id: str) -> dict[str, Any] | None:
        """The session's admin (`username`, `expires_at`) while it is live; None once it ended."""
        try:
            result: dict[str, Any] = await self.call("GET", "/sessions/current", actor=None, session_id=session_id)
        except ApiError as exc:
            if exc.status in (404, 422):
                return None
            raise
        return result

    async def end_session(self, session_id: str) -> None:
        await self.call("DELETE", "/sessions/current", actor=None, session_id=session_id)

    async def find_owner(self, kind: str, name: str, *, actor: str) -> dict[str, Any] | None:
        """The owner of this kind named exactly `name`, if there is one."""
        for page in range(1, _LOOKUP_PAGES + 1):
            params = {"q": name, "per_page": 200, "page": page}
            found = await self.call("GET", f"/{PLURAL[kind]}", actor=actor, params=params)
            exact = [item for item in found["items"] if item["name"] == name]
            if exact:
                return dict(exact[0])
            if page * 200 >= found["total"]:
                break
        return None
