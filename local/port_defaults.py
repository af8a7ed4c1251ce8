"""`make run`'s port defaults, printed as shell assignments from the services' own settings, so
each port is written once: as the default of the setting that reads it."""

from __future__ import annotations

import importlib

# (environment variable, settings module, field)
PORTS = (
    ("SENDER_PORT", "sender.config", "sender_port"),
    ("TOKEN_VALIDATOR_PORT", "token_validator.config", "token_validator_port"),
    ("TOKEN_PANEL_PORT", "token_panel.config", "token_panel_port"),
    ("CONSUMER_LOGS_PORT", "consumer_logs.config", "consumer_logs_port"),
    ("DEAD_LETTERS_PORT", "dead_letters.config", "dead_letters_port"),
    ("CONSUMER_SMS_METRICS_PORT", "consumer_sms.config", "consumer_sms_metrics_port"),
    ("CONSUMER_EMAIL_METRICS_PORT", "consumer_email.config", "consumer_email_metrics_port"),
    ("CONSUMER_WEBHOOKS_METRICS_PORT", "consumer_webhooks.config", "consumer_webhooks_metrics_port"),
)


def main() -> None:
    for variable, module, field in PORTS:
        default = importlib.import_module(module).Settings.model_fields[field].default
        print(f"default_{variable}={int(default)}")


if __name__ == "__main__":
    main()
