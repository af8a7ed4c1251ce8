"""sender: the HTTP front door. Validates a request, publishes it durably, answers 202."""
