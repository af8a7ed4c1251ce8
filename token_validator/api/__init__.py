"""HTTP routers: the senders' service endpoints and the admin API."""
