"""The trading domain: the strategy SDK, incremental indicators, the built-in strategies and their registry."""
