"""trademesh risk: Pre-trade risk: checks every order intent against its account's limits and approves or denies it."""
