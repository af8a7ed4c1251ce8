"""Reading a request body: size limit, content type, JSON or HTML form, strict UTF-8."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from cartero_common.http import Problem
from cartero_common.json_input import NotJson, parse_json

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"


def _too_large(limit: int) -> Problem:
    return Problem(413, "payload_too_large", f"The body is larger than {limit} bytes.")


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing (413) anything over `limit` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _too_large(limit)
        except ValueError:
            raise Problem(400, "invalid_request", "Content-Length is not a number.") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def parse_fields(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object or a URL-encoded form as a dict; 415 / 413 / 422 problems otherwise."""
    kind = media_type(request)
    if kind not in (JSON_TYPE, FORM_TYPE):
        raise Problem(
            415,
            "unsupported_media_type",
            f"Send {JSON_TYPE} or {FORM_TYPE}, not {kind or 'a body without Content-Type'}.",
        )
    raw = await read_limited(request, limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(422, "invalid_request", "The body is not valid UTF-8.") from None
    if kind == JSON_TYPE:
        try:
            data = parse_json(text)
        except NotJson as exc:
            raise Problem(422, "invalid_request", f"The body is not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise Problem(422, "invalid_request", "The body must be a JSON object.")
        return data
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise Problem(422, "invalid_request", "The form is not valid UTF-8.") from None
    # A repeated form field keeps its last value, as PHP's $_POST does.
    return dict(pairs)
