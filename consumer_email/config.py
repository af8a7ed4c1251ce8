from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from cartero_common.settings import ConsumerSettings


class Settings(ConsumerSettings):
    # CONSUMER_EMAIL_DATABASE_URL first, so one environment can serve every service (make run);
    # DATABASE_URL otherwise (a container of its own).
    database_url: str = Field(
        default="sqlite:///var/consumer_email.db",
        validation_alias=AliasChoices("consumer_email_database_url", "database_url"),
    )
    consumer_email_metrics_port: int = Field(default=9102, ge=0, le=65535)  # 0: no metrics endpoint
    # Unset: chosen by provider (see cartero_common.consumer_cli.default_prefetch).
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
