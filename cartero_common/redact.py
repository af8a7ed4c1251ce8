"""Credentials out of what is printed or logged: `amqp://cartero:s3cret@host/` becomes
`amqp://cartero:***@host/`."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# `scheme://user:password@` anywhere in a text; the password ends at the last `@` before the host.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^\s/?#]*@")


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by `***`; the user, host and path kept, so the
    line still says where it points. A comma-separated list of URLs (`AMQP_URL`'s nodes) is
    masked URL by URL."""
    if "," in url:
        return ",".join(redact_url(part) for part in url.split(","))
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{MASK}@{host}"))


def redact_text(text: str) -> str:
    """Every `scheme://user:password@` in `text` with the password masked."""
    return _USERINFO.sub(lambda found: f"{found['head']}{MASK}@", text)


def public_url(url: str) -> str:
    """Where `url` points, safe to print anywhere and to use as a metric label: scheme, host,
    port and path; the user, password, query and fragment left out (a gateway's key often rides
    in one of them)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
