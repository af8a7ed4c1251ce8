from __future__ import annotations

from pydantic import Field

from cartero_common.settings import ServiceSettings


class Settings(ServiceSettings):
    database_url: str = "sqlite:///var/token_validator.db"
    # `migrate` as the database's owner (PostgreSQL): the role `serve` runs as, granted row access
    # to the tables afterwards (cartero_common.pg_roles). Empty: no grants.
    database_runtime_role: str = ""
    token_validator_host: str = "127.0.0.1"
    token_validator_port: int = 8001
    token_validator_workers: int = 1
    # Held by the senders (`/v1/validate`, refunds) and by the panel and scripts (`/v1/admin/`).
    validator_service_key: str = ""
    validator_admin_key: str = ""
    # Held by consumer_webhooks, and opens only `GET /v1/webhooks/endpoints` (the endpoints and
    # their signing secrets). Empty: that route refuses every caller.
    validator_webhooks_key: str = ""
    # Webhook URLs whose host resolves to a loopback, private, link-local… address are refused
    # (`cartero_common.callback_urls`), so a webhook cannot be pointed into Cartero's own network.
    # `make run` allows them, for a receiver on the same machine.
    webhooks_allow_private_urls: bool = False
    # PostgreSQL: whether a hot-path spend waits for the WAL flush before answering. Off, a crash
    # of the database can forget the last fraction of a second of spends; on, a busy token is
    # limited by the disk's flush latency. Admin changes (revocations included) always wait.
    token_validator_synchronous_commit: bool = True
    # Uses kept for a publish the broker did not confirm in time are settled against the message
    # log once they are this old (`token_validator.reconcile`); it must exceed the longest time
    # a queued message can wait before a consumer reports it. 0 turns reconciliation off.
    consumer_logs_url: str = "http://127.0.0.1:8003"
    # What reconciliation presents to the message log (consumer_logs' CONSUMER_LOGS_READ_KEY).
    consumer_logs_read_key: str = ""
    reconcile_after_seconds: float = 600.0
    reconcile_every_seconds: float = 30.0
    # Refusals older than this are deleted by the validator itself, every few minutes.
    refusal_retention_days: int = Field(default=90, ge=1)
    # The panel's sign-ins (`POST /v1/admin/sessions`), kept here so that every panel process
    # sees the same sessions and the same count of failures. A session ends this long after it
    # began, or sooner: at sign-out, when its admin's password changes, or when the admin goes.
    panel_session_minutes: int = Field(default=480, ge=1)
    # Failed sign-ins allowed in the window (then 429): per username from one client address, and
    # per client address whatever the username, so a guesser locks out only their own address.
    panel_signin_max_failures: int = Field(default=5, ge=1)
    panel_signin_max_failures_per_address: int = Field(default=20, ge=1)
    panel_signin_window_seconds: int = Field(default=900, ge=1)
