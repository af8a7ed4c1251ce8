"""A broker node that goes silent (cut off by the network, not closed) noticed in seconds.

A node that dies or stops closes its connections, and the clients move on at once. One cut off
sends nothing at all: no FIN, no RST. The clients' own checks then take long: aiormq (the sender)
gives a connection up after 3 × (heartbeat + 1) s without a frame, pika (the consumers) checks
every heartbeat + 5 s. The kernel knows sooner: data the client sent that the other end never
acknowledged. `TCP_USER_TIMEOUT` (Linux, RFC 5482) closes a connection whose sent data stays
unacknowledged that long, and a client always has something in flight on a busy connection (a
publish) or soon on an idle one (its heartbeat). A healthy broker that is merely slow to answer
(a memory alarm, flow control) still acknowledges every segment at the TCP level, so it is never
taken for a silent one: its late confirms still arrive.

Both clients set it: pika through its `tcp_options` (`pika_tcp_options`), aio-pika through a
transport factory that sets it on the socket it opens (aiormq has no option for it), which lives
beside the sender's publisher (`publisher.py`) so that the consumers need not install aio-pika.
"""

from __future__ import annotations

import socket

# Unacknowledged data for this long ends a connection. Seconds under load are normal TCP round
# trips' hundreds of times over; a node silent this long is taken as gone.
USER_TIMEOUT_MS = 2000
SUPPORTED = hasattr(socket, "TCP_USER_TIMEOUT")


def set_user_timeout(sock: socket.socket | None) -> None:
    """`TCP_USER_TIMEOUT` on a socket a client opened (nothing where the platform has none)."""
    if SUPPORTED and sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)


def pika_tcp_options() -> dict[str, int]:
    """pika's `tcp_options` for `TCP_USER_TIMEOUT` (empty where the platform has none)."""
    return {"TCP_USER_TIMEOUT": USER_TIMEOUT_MS} if SUPPORTED else {}
