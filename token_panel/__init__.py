"""The admins' web UI: server-rendered pages over the validator's admin API and the message log."""
