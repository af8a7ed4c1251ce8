from __future__ import annotations

from typing import Literal

from pydantic import Field

from cartero_common.settings import ConsumerSettings, service_database_url


class Settings(ConsumerSettings):
    database_url: str = service_database_url("consumer_email")
    consumer_email_metrics_port: int = Field(default=9102, ge=0, le=65535)  # 0: no metrics endpoint
    # Unset: chosen by provider (see cartero_common.consume.cli.default_prefetch).
    consumer_email_prefetch: int | None = Field(default=None, ge=1)
    email_provider: Literal["smtp", "file"] = "smtp"
    smtp_from: str = "Cartero <cartero@localhost>"
    mail_dir: str = "var/mail"
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "ssl"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout: float = Field(default=10.0, gt=0)
