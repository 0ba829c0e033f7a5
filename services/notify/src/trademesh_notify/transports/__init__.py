"""How a delivery reaches a channel of each kind: one transport per kind (webhook, Telegram,
e-mail), behind one small protocol that the delivery loop calls."""

from __future__ import annotations

from typing import Protocol

from trademesh_notify.store import Due


class SendError(Exception):
    """An attempt failed. The message says how, and never holds a secret or a URL with one.

    `retry_after_s`: the receiver asked not to be tried again sooner (Telegram's 429);
    `permanent`: trying again cannot help (a chat that does not exist, a bot blocked, a mail
    server's 5xx), so the delivery is dead at once."""

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.permanent = permanent


class Transport(Protocol):
    """Sends one delivery to its channel with the channel's opened secret; returns when the
    receiver took it, raises SendError (or ValueError for a destination refused) otherwise."""

    async def send(self, due: Due, secret: str) -> None: ...


__all__ = ["SendError", "Transport"]
