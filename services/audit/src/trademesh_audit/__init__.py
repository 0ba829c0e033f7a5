"""trademesh audit: The tamper-evident audit log: every order, bot and auth event, hash-chained and append-only."""
