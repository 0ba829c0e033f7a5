"""A log capture over the whole test suite that fails the run if any log line carries a secret.

Every record that reaches the root logger, from any test, service or library, is checked as it
is emitted for:
- anything shaped like an access token (a JWT: `eyJ….eyJ….…`) or a trademesh API key
  (`tmk_<16 hex>_<secret>`), whoever made it;
- the literal secrets the tests register (`register_secret`: test passwords, the local
  exchange's API key and secret, refresh tokens), which have no shape of their own.

Checking at emit time keeps the cost to one regular expression per record, however long the
suite. A finding is kept (with the secret cut to its first characters) and reported when the
session ends, which then fails. The guard's own test uses `allowing()` to see a finding without
failing the run.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_SHAPES = (
    r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}",  # a JWT
    r"tmk_[0-9a-f]{16}_[A-Za-z0-9_-]{40,}",  # a trademesh API key
)
MIN_SECRET = 8  # shorter literals would match ordinary text


@dataclass(frozen=True)
class Finding:
    logger: str
    excerpt: str  # the secret cut to its first characters: the report itself must not leak


class SecretsGuard(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self._lock_registry = threading.Lock()
        self._literals: set[str] = set()
        self._pattern = re.compile("|".join(_SHAPES))
        self.findings: list[Finding] = []
        self._allowing: list[list[Finding]] = []
        self.set_name("trademesh-secrets-guard")

    def register(self, secret: str) -> None:
        if len(secret) < MIN_SECRET:
            raise ValueError(f"a registered secret has at least {MIN_SECRET} characters")
        with self._lock_registry:
            if secret in self._literals:
                return
            self._literals.add(secret)
            parts = [
                *_SHAPES,
                *(re.escape(s) for s in sorted(self._literals, key=len, reverse=True)),
            ]
            self._pattern = re.compile("|".join(parts))

    @staticmethod
    def _text(record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception:
            message = f"{record.msg!r} {record.args!r}"
        parts = [message, str(record.msg)]
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
        if record.exc_text:
            parts.append(record.exc_text)
        return "\n".join(parts)

    def emit(self, record: logging.LogRecord) -> None:
        found = self._pattern.search(self._text(record))
        if found is None:
            return
        finding = Finding(record.name, found.group(0)[:6] + "…")
        (self._allowing[-1] if self._allowing else self.findings).append(finding)

    @contextmanager
    def allowing(self) -> Iterator[list[Finding]]:
        """Findings inside go to the list yielded, not to the session's (the guard's own test)."""
        seen: list[Finding] = []
        self._allowing.append(seen)
        try:
            yield seen
        finally:
            self._allowing.remove(seen)


GUARD = SecretsGuard()


def register_secret(*secrets: str) -> None:
    """Make the whole-suite log capture fail the run if any of `secrets` is ever logged."""
    for secret in secrets:
        GUARD.register(secret)


def install() -> None:
    root = logging.getLogger()
    if GUARD not in root.handlers:
        root.addHandler(GUARD)
