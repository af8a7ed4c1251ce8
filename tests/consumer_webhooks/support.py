"""A real webhook receiver for the tests: an HTTP server on a free port that answers scripted
statuses (then 200), may sleep before answering or send its first answer a byte at a time, and
keeps every request it got."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support import free_port

SECRET = "whsec_" + base64.b64encode(b"a-secret-of-twenty-four-bytes!!").decode()


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int
    at: float = 0.0  # time.monotonic() when it came

    @property
    def payload(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.body)
        return result


def signature_by_hand(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature as the spec writes it out: HMAC-SHA256 of
    "{id}.{timestamp}.{body}" keyed with the base64-decoded secret after `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


class Receiver:
    def __init__(
        self,
        statuses: list[int] | None = None,
        *,
        delay: float = 0.0,
        port: int | None = None,
        host: str = "127.0.0.1",
        trickle: float = 0.0,
        tls: ssl.SSLContext | None = None,
        endless: bool = False,
    ) -> None:
        self.statuses = list(statuses or [])
        self.delay = delay
        self.host = host
        # Seconds between the bytes of the first answer (0: answered at once).
        self.trickle = trickle
        self.port = port or free_port()
        self.tls = tls
        # Answer with a body that never ends (sent as fast as it is taken).
        self.endless = endless
        # The TLS server names (SNI) clients asked for.
        self.server_names: list[str | None] = []
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append(Received(headers, body, status, time.monotonic()))
                    trickle, receiver.trickle = receiver.trickle, 0.0
                if trickle:
                    self.close_connection = True
                    try:
                        for byte in f"HTTP/1.1 {status} OK\r\ncontent-length: 0\r\n\r\n".encode():
                            self.wfile.write(bytes([byte]))
                            time.sleep(trickle)
                    except OSError:
                        pass  # the client gave up
                    return
                if receiver.endless:
                    self.close_connection = True
                    self.send_response(status)
                    self.send_header("content-length", str(1 << 40))
                    self.end_headers()
                    try:
                        while True:
                            self.wfile.write(b"x" * 65536)
                    except OSError:
                        return  # the client stopped reading
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        if self.tls is not None:
            self.tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def got(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def delivered(self) -> list[Received]:
        return [r for r in self.got() if 200 <= r.status < 300]


def certificate_for(name: str, directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for `name` signed by a CA of its own (openssl), and
    that CA's file for the client to trust."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=Test CA",
    )
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", f"/CN={name}")
    (directory / "san.ext").write_text(f"subjectAltName=DNS:{name}\n")
    openssl(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "leaf.pem", "-days", "1", "-extfile", "san.ext",
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "leaf.pem", directory / "leaf.key")
    return context, directory / "ca.pem"
