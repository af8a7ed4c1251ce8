"""token_validator: bearer tokens, their quotas, and every decision about them (DESIGN §6)."""
