"""The HTTP app factory: FastAPI with /health, /ready (real dependency checks), /metrics, request ids and RFC 9457 errors."""

from trademesh_http.app import ReadinessCheck, create_http_app
from trademesh_http.problems import (
    Problem,
    ProblemError,
    install_problem_handlers,
    problem_response,
)

__all__ = [
    "Problem",
    "ProblemError",
    "ReadinessCheck",
    "create_http_app",
    "install_problem_handlers",
    "problem_response",
]
