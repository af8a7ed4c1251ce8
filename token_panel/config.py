from __future__ import annotations

import ipaddress

from pydantic import AliasChoices, Field

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
    # Presented to the message log on every read (consumer_logs' CONSUMER_LOGS_READ_KEY).
    consumer_logs_read_key: str = ""
    # The dead_letters service (its DEAD_LETTERS_KEY): the DLQ pages, and the counts on the
    # overview, which say "unavailable" while it does not answer.
    dead_letters_url: str = "http://127.0.0.1:8004"
    dead_letters_key: str = ""
    # Seconds a replay or discard may take: replay waits for the broker's confirm of each
    # message, so "Replay all" of thousands outlasts VALIDATOR_TIMEOUT by far.
    dead_letters_action_timeout: float = 300.0
    # Signs the session and flash cookies; changing it signs everybody out.
    panel_secret_key: str = ""
    # Set to true behind HTTPS so the browser never sends the session over plain HTTP.
    panel_cookie_secure: bool = False
    # The sessions themselves, their length (PANEL_SESSION_MINUTES) and the sign-in throttle
    # (PANEL_SIGNIN_*) are the token validator's: every panel process shares them.

    # Addresses or networks (comma-separated) of the reverse proxies in front of the panel: only
    # from them is X-Forwarded-For believed about who the client is (the address the validator
    # counts failed sign-ins by). None by default, so a client cannot pick a new address per
    # guess. FORWARDED_ALLOW_IPS (uvicorn's name) is read too.
    trusted_proxies: str = Field("", validation_alias=AliasChoices("trusted_proxies", "forwarded_allow_ips"))

    def trusted_proxy_list(self) -> list[str]:
        return [item.strip() for item in self.trusted_proxies.split(",") if item.strip()]


def settings_problems(settings: Settings) -> list[str]:
    """Why the settings are unfit to serve with, if they are."""
    problems = []
    if len(settings.panel_secret_key) < MIN_SECRET_LENGTH:
        problems.append(f"PANEL_SECRET_KEY must be a random secret of at least {MIN_SECRET_LENGTH} characters")
    if not settings.validator_admin_key:
        problems.append("VALIDATOR_ADMIN_KEY must be set (the token validator's admin credential)")
    if not settings.consumer_logs_read_key:
        problems.append("CONSUMER_LOGS_READ_KEY must be set (the message log's read credential)")
    for proxy in settings.trusted_proxy_list():
        if proxy != "*" and not _is_network(proxy):
            problems.append(f"TRUSTED_PROXIES: {proxy!r} is not an IP address or network")
    return problems


def _is_network(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True
