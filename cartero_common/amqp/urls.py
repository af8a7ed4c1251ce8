"""`AMQP_URL` as a list of nodes: `amqp://u:p@node1/,amqp://u:p@node2/,…` (one URL is a list of one).

Every client picks a node at random, so that a fleet of processes spreads over the cluster, and
goes on to the others in turn when its node is lost (`failover_order`). The nodes of one list
belong to one cluster: the same scheme, credentials and vhost on each. A list mixing them is
refused at start, since a failover would then silently switch user, vhost or TLS.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import unquote, urlsplit


class _Identity(NamedTuple):
    scheme: str
    username: str
    password: str
    vhost: str


def _identity(url: str) -> _Identity:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("amqp", "amqps"):
        raise ValueError(f"each URL must start with amqp:// or amqps://, got {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise ValueError("each URL needs a host")
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    # pika's reading: an empty or missing path is the default vhost "/".
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return _Identity(parts.scheme.lower(), unquote(parts.username or ""), unquote(parts.password or ""), vhost)


def split_urls(value: str) -> tuple[str, ...]:
    """The URLs of a comma-separated `AMQP_URL`, blanks dropped; ValueError, naming no password,
    if one is malformed or the list mixes schemes, users or vhosts."""
    urls = tuple(part.strip() for part in value.split(",") if part.strip())
    if not urls:
        raise ValueError("no broker URL given")
    identities = [_identity(url) for url in urls]
    first = identities[0]
    for position, identity in enumerate(identities[1:], start=2):
        for field in ("scheme", "username", "password", "vhost"):
            if getattr(identity, field) != getattr(first, field):
                shown = field if field == "password" else f"{field} {getattr(identity, field)!r}"
                raise ValueError(
                    f"URL {position} differs from the first in its {shown}: the nodes of one list are one cluster"
                )
    return urls


def first_url(value: str) -> str:
    """The first node's URL: what a tool that reads the URL's vhost or user looks at."""
    return split_urls(value)[0]


def failover_order(urls: Sequence[str], rng: random.Random | None = None) -> list[str]:
    """Every node once, starting from a random one and going round in the list's order, so the
    processes of a fleet start on different nodes and each still tries them all."""
    start = (rng or random).randrange(len(urls))
    return [*urls[start:], *urls[:start]]


def node_label(url: str) -> str:
    """A node's `host:port` for logs and metrics: never its credentials."""
    return (urlsplit(url).netloc or url).rsplit("@", 1)[-1]
