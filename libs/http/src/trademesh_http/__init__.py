"""The HTTP app factory: FastAPI with /health, /ready (real dependency checks), /metrics, request ids and RFC 9457 errors."""
