"""Email providers: SMTP (Mailpit in compose, any relay in production) and .eml files (the
embedded default). `send` returns once delivered, with the name of the provider that took it
(for the `consumido` event), or raises `TransientFailure` / `PermanentFailure`; `batchable` as
for SMS (`consumer_sms.providers`). Several SMTP servers: `FailoverSmtp` (docs/failover.md)."""

from __future__ import annotations

import logging
import os
import re
import smtplib
import ssl
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from typing import Literal, Protocol

from cartero_common.consume import Failover, PermanentFailure, TransientFailure

log = logging.getLogger("consumer_email.provider")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class EmailProvider(Protocol):
    batchable: bool

    def send(self, message_id: str, mail: MimeMessage) -> str | None: ...


class FileProvider:
    """One `<id>.eml` per message under `directory`. Written whole then renamed, so a reader
    never sees half a file; a resend overwrites the same file, hence batchable."""

    batchable = True
    name = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path_for(self, message_id: str) -> Path:
        return self.directory / f"{_UNSAFE.sub('_', message_id)}.eml"

    def send(self, message_id: str, mail: MimeMessage) -> str:
        target = self.path_for(message_id)
        partial = target.with_suffix(".eml.partial")
        try:
            partial.write_bytes(mail.as_bytes())
            os.replace(partial, target)
        except OSError as exc:
            raise TransientFailure(f"cannot write {target}: {exc}") from None
        log.info("email written", extra={"id": message_id, "path": str(target)})
        return self.name


def server_name(host: str, port: int) -> str:
    """`host:port` (`[v6]:port`): the metric label and the event's `proveedor`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


Security = Literal["none", "starttls", "ssl"]


class SmtpProvider:
    """Delivers through an SMTP server, keeping one connection open between messages.

    4xx replies (and timeouts, dropped connections) are transient; 5xx are permanent.
    """

    batchable = False

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security = "none",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self.password, self.timeout = username, password, timeout
        self.name = server_name(host, port)
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def send(self, message_id: str, mail: MimeMessage) -> str:
        try:
            refused = self._connect().send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            self._reset()
            codes = [code for code, _ in exc.recipients.values()]
            _raise_for(min(codes) if codes else 550, f"recipient refused: {exc.recipients}")
        except smtplib.SMTPResponseException as exc:
            self._reset()
            _raise_for(exc.smtp_code, f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}")
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise TransientFailure(f"SMTP server unreachable or gone: {exc!r}") from None
        if refused:
            raise PermanentFailure(f"recipient refused: {refused}")
        log.info("email sent", extra={"id": message_id, "smtp_server": self.name})
        return self.name

    def _reset(self) -> None:
        # After a refusal the session may be half-way through a transaction; start clean.
        if self._smtp is not None:
            try:
                self._smtp.rset()
            except (smtplib.SMTPException, OSError):
                self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


class FailoverSmtp:
    """The configured SMTP servers in order, each behind its circuit breaker: a transient
    failure on one (refused connection, timeout, 4xx) tries the next within the same attempt."""

    batchable = False

    def __init__(self, failover: Failover[SmtpProvider]) -> None:
        self.failover = failover

    def send(self, message_id: str, mail: MimeMessage) -> str:
        return self.failover.send(lambda server: server.send(message_id, mail))

    def close(self) -> None:
        for server in self.failover.providers:
            server.close()


def _text(error: bytes | str) -> str:
    return error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)


def _raise_for(code: int, detail: str) -> None:
    if 400 <= code < 500:
        raise TransientFailure(detail)
    raise PermanentFailure(detail)
