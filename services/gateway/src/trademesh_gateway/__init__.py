"""trademesh gateway: The only public API: authenticates callers, enforces roles, ownership and rate limits, and routes /api/v1 to the services."""
