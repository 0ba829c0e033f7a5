"""The HTTP app factory: FastAPI with /health, /ready (real dependency checks), /metrics, request ids, RFC 9457 errors and access-token verification."""

from trademesh_http.app import ReadinessCheck, create_http_app
from trademesh_http.caller import Caller
from trademesh_http.problems import (
    Problem,
    ProblemError,
    install_problem_handlers,
    problem_response,
)
from trademesh_http.tokens import AccessClaims, TokenVerifier

__all__ = [
    "AccessClaims",
    "Caller",
    "Problem",
    "ProblemError",
    "ReadinessCheck",
    "TokenVerifier",
    "create_http_app",
    "install_problem_handlers",
    "problem_response",
]
