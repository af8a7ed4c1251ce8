"""consumer_webhooks: delivers the owners' webhook notifications to their endpoints."""
