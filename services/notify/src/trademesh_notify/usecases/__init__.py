"""The notify service's use cases: between its handlers and routes and its pure engine."""
