"""Secrets out of sight: texts with an exchange account's secrets and request signatures masked,
and a logger for ccxt's exchanges that masks them before any handler sees a record.

ccxt logs every request at DEBUG (with the API key header) to its exchange's `logger`; error
texts quote the signed request. Neither may carry a secret out of the process.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import SecretStr

CCXT_LOGGER = "ccxt.base.exchange"  # the logger ccxt's exchanges write to
MASK = "***"
# A request signature in a query string (signature=...) or in a JSON or Python mapping
# ("signature": "..."), as a WebSocket request carries it.
_SIGNATURE = re.compile(r"(signature['\"]?\s*[=:]\s*['\"]?)[^&\s'\",}]+", re.IGNORECASE)


class Redactor:
    """Masks the given secrets (and request signatures) in a text. Keeps them as SecretStr."""

    def __init__(self, secrets: Iterable[SecretStr | None]) -> None:
        self._secrets = [s for s in secrets if s is not None and s.get_secret_value()]

    def __call__(self, text: str) -> str:
        # Longest first, so that a secret containing another is masked whole.
        values = sorted((s.get_secret_value() for s in self._secrets), key=len, reverse=True)
        for value in values:
            text = text.replace(value, MASK)
        return _SIGNATURE.sub(rf"\g<1>{MASK}", text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"


class RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger for a ccxt exchange: formats each record itself and masks the secrets in it
    before the record exists (a traceback's text too), so no handler ever sees them."""

    def __init__(self, logger: logging.Logger, redact: Callable[[str], str]) -> None:
        super().__init__(logger, {})
        self._redact = redact

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(str(part) for part in (msg, *args))
        exc_info = kwargs.pop("exc_info", None)
        kwargs.pop("stack_info", None)
        if exc_info:
            if isinstance(exc_info, BaseException):
                error: BaseException | None = exc_info
            else:
                error = (exc_info if isinstance(exc_info, tuple) else sys.exc_info())[1]
            if error is not None:
                text = f"{text} ({type(error).__name__}: {error})"
        extra = {k: v for k, v in kwargs.items() if k in ("extra", "stacklevel")}
        self.logger.log(level, self._redact(text), **extra)
