"""A real SMTP server (aiosmtpd) for the consumer_email tests, with scripted replies."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.support import free_port

SENDER = "Cartero <avisos@cartero.example>"


class ScriptedSmtp:
    """An aiosmtpd handler: the scripted replies to RCPT or DATA first, then accepts."""

    def __init__(self, rcpt: list[str] | None = None, data: list[str] | None = None) -> None:
        self.rcpt = list(rcpt or [])
        self.data = list(data or [])
        self.delivered: list[email.message.EmailMessage] = []
        self.attempts = 0

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if self.rcpt:
            return self.rcpt.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.attempts += 1
        if self.data:
            return self.data.pop(0)
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.delivered.append(parsed)
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[ScriptedSmtp, Controller]]:
    handler = ScriptedSmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller
    finally:
        controller.stop()
