"""trademesh strategy: Strategies, bots and backtests: runs strategy code on bars and emits order intents."""
