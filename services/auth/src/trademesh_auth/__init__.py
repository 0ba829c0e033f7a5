"""trademesh auth: Users, passwords, access and refresh tokens, API keys: who may do what."""
