"""monitor: watches one queue's depth and scales its consumers (local processes or containers)."""
