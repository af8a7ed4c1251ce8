"""token_validator: bearer tokens, their quotas, and every decision about them (docs/design.md §6)."""
