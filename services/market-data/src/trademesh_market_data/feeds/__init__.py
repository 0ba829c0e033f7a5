"""Feeds: sources of ticks or bars behind one interface (replay, synthetic, ccxt)."""
