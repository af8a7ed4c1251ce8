"""A queue message as a real RFC 5322 email (`email.message.EmailMessage`, UTF-8)."""

from __future__ import annotations

import re
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, parseaddr

from cartero_common.wire import LINE_BREAKS, EmailMessage

# Every line break `str.splitlines()` knows: the email package refuses each one in a header.
_LINE_BREAKS = re.compile(f"[{re.escape(LINE_BREAKS)}]+")


def sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


def build_email(email: EmailMessage, *, sender: str, now: datetime) -> MimeMessage:
    """The message id becomes the Message-ID, so a resent copy is recognisably the same mail.
    A subject cannot carry line breaks (header injection), of any kind: they become spaces. (The
    sender refuses such a subject; a message the PHP senders queued may still hold one.)"""
    message = MimeMessage()
    message["From"] = sender
    message["To"] = Address(addr_spec=email.destinatario)
    message["Subject"] = _LINE_BREAKS.sub(" ", email.asunto).strip()
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{email.id}@{sender_domain(sender)}>"
    message.set_content(email.cuerpo, charset="utf-8")
    return message
