from __future__ import annotations

from cartero_common.settings import ServiceSettings

MIN_SECRET_LENGTH = 32


class Settings(ServiceSettings):
    token_panel_host: str = "127.0.0.1"
    token_panel_port: int = 8002
    # The panel holds the validator's admin credential; it owns no token data itself.
    validator_url: str = "http://127.0.0.1:8001"
    validator_admin_key: str = ""
    validator_timeout: float = 5.0
    consumer_logs_url: str = "http://127.0.0.1:8003"
    # Signs the session and flash cookies; changing it signs everybody out.
    panel_secret_key: str = ""
    panel_session_minutes: int = 480
    # Set to true behind HTTPS so the browser never sends the session over plain HTTP.
    panel_cookie_secure: bool = False
    panel_signin_max_failures: int = 5
    panel_signin_window_seconds: int = 900


def settings_problems(settings: Settings) -> list[str]:
    """Why the settings are unfit to serve with, if they are."""
    problems = []
    if len(settings.panel_secret_key) < MIN_SECRET_LENGTH:
        problems.append(f"PANEL_SECRET_KEY must be a random secret of at least {MIN_SECRET_LENGTH} characters")
    if not settings.validator_admin_key:
        problems.append("VALIDATOR_ADMIN_KEY must be set (the token validator's admin credential)")
    if settings.panel_session_minutes < 1:
        problems.append("PANEL_SESSION_MINUTES must be at least 1")
    return problems
