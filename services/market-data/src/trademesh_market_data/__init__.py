"""trademesh market-data: Market data: replay, synthetic and ccxt feeds, bars, the tick store and the history API."""
