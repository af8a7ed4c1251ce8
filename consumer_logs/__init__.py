"""consumer_logs: stores every `logs` event and serves them at `GET /v1/events`."""
