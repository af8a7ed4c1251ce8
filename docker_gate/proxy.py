"""The gate's HTTP side: every request is judged by `docker_gate.rules`, forwarded to the engine's
unix socket when allowed (the answer streamed back as it comes), refused with a 403
problem+json (RFC 9457) and a log line when not."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from aiohttp import web

from docker_gate.rules import Policy, Profile, Request, Verdict, decide, owned, with_container_id

log = logging.getLogger(__name__)

# The engine's answer headers that describe the connection, not the content: aiohttp sets its own.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "te", "trailer"}
# Request headers passed on to the engine; the rest (auth for registries, upgrades…) stay here.
_FORWARDED_HEADERS = ("Content-Type", "User-Agent", "Accept")
ENGINE = "http://docker"  # the host part is ignored on a unix socket
PROFILE_KEY: web.AppKey[Profile] = web.AppKey("profile")
POLICY_KEY = web.AppKey("policy", Policy)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)


def problem(status: int, title: str, detail: str) -> web.Response:
    # `message` as well as `detail`: Docker clients print the engine's `message` field.
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "message": detail}
    return web.json_response(body, status=status, content_type="application/problem+json")


def make_app(
    *, socket_path: str, profile: Profile, policy: Policy, max_body_bytes: int = 1024 * 1024
) -> web.Application:
    app = web.Application(client_max_size=max_body_bytes)
    app[PROFILE_KEY] = profile
    app[POLICY_KEY] = policy

    async def session_context(app: web.Application) -> Any:
        connector = aiohttp.UnixConnector(path=socket_path)
        # No total timeout: a stop waits for the container's grace period.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
            app[SESSION_KEY] = session
            yield

    app.cleanup_ctx.append(session_context)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def handle(request: web.Request) -> web.StreamResponse:
    if request.method == "GET" and request.path == "/healthz":
        # The gate itself is up (compose's healthcheck asks `/_ping`, which also reaches the engine).
        return web.json_response({"status": "ok"})
    profile = request.app[PROFILE_KEY]
    peer = request.remote or ""
    raw_path = request.raw_path.split("?", 1)[0]
    if request.headers.get("Upgrade") or "upgrade" in request.headers.get("Connection", "").lower():
        return _refused(request, profile, raw_path, "connection upgrades (attach, exec) are not allowed", peer)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _refused(request, profile, raw_path, "the body is larger than the gate accepts", peer, status=413)
    verdict = decide(Request(request.method, raw_path, request.query_string, body), profile, request.app[POLICY_KEY])
    if not verdict.allowed:
        return _refused(request, profile, raw_path, verdict.reason, peer)
    session = request.app[SESSION_KEY]
    version = raw_path[: len(raw_path) - len(verdict.path)]  # the client's /v1.NN prefix, if any
    path = verdict.path
    if verdict.container:
        resolved = await _consumer_id(session, version, verdict)
        if isinstance(resolved, web.Response):
            if resolved.status == 403:
                log.warning(
                    "refused",
                    extra={
                        "profile": profile,
                        "method": request.method,
                        "path": raw_path,
                        "peer": peer,
                        "reason": "not a consumer container",
                    },
                )
            return resolved
        path = with_container_id(path, verdict.container, resolved)
    return await _forward(request, session, version + path, verdict)


def _refused(
    request: web.Request, profile: str, path: str, reason: str, peer: str, *, status: int = 403
) -> web.Response:
    log.warning(
        "refused", extra={"profile": profile, "method": request.method, "path": path, "peer": peer, "reason": reason}
    )
    return problem(status, "Refused by the Docker API gate", reason)


async def _consumer_id(session: aiohttp.ClientSession, version: str, verdict: Verdict) -> str | web.Response:
    """The container's full id if the engine says it is a consumer; else the answer to give."""
    try:
        async with session.get(f"{ENGINE}{version}/containers/{verdict.container}/json") as answer:
            if answer.status == 404:
                return problem(404, "No such container", f"no such container: {verdict.container}")
            if answer.status != 200:
                return problem(502, "Engine error", f"the engine answered {answer.status} to an inspect")
            attrs = await answer.json()
    except (aiohttp.ClientError, ValueError) as exc:
        return problem(502, "Engine unreachable", f"the Docker engine did not answer: {exc}")
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    container_id = attrs.get("Id")
    if not owned(labels) or not isinstance(container_id, str) or not container_id.isalnum():
        return problem(
            403, "Refused by the Docker API gate", f"container {verdict.container} is not a consumer container"
        )
    return container_id


async def _forward(
    request: web.Request, session: aiohttp.ClientSession, path: str, verdict: Verdict
) -> web.StreamResponse:
    headers = {name: request.headers[name] for name in _FORWARDED_HEADERS if name in request.headers}
    if verdict.body is not None:
        headers["Content-Type"] = "application/json"
    try:
        async with session.request(
            request.method, f"{ENGINE}{path}", params=list(verdict.query), data=verdict.body, headers=headers
        ) as answer:
            response = web.StreamResponse(status=answer.status, reason=answer.reason)
            for name, value in answer.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    response.headers.add(name, value)
            if answer.content_length is not None:
                response.content_length = answer.content_length
            await response.prepare(request)
            try:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
            except aiohttp.ClientError as exc:
                # Headers are sent: all that is left is to cut the answer short, and say why here.
                log.error("engine answer cut short", extra={"path": path, "error": str(exc)})
                return response
            await response.write_eof()
            return response
    except aiohttp.ClientError as exc:
        log.error("engine unreachable", extra={"path": path, "error": str(exc)})
        return problem(502, "Engine unreachable", f"the Docker engine did not answer: {exc}")
