"""Settings base: every service reads configuration from environment variables only."""

from __future__ import annotations

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_AMQP_URL = "amqp://guest:guest@localhost:5672/"


class ServiceSettings(BaseSettings):
    """Names shared by every service (DESIGN §3). Field names are the env var names."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    amqp_url: str = DEFAULT_AMQP_URL
    timezone: str = "Europe/Madrid"
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _upper_level(cls, value: str) -> str:
        return value.upper()
