"""Bot lifecycle events, keyed by bot."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import StringConstraints

from trademesh_events.base import Event
from trademesh_events.ids import BotId, UserId, UtcDateTime


class BotState(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    ERROR = "ERROR"


class BotStateChanged(Event):
    type: Literal["trademesh.bot.state_changed"] = "trademesh.bot.state_changed"
    bot_id: BotId
    user_id: UserId
    state: BotState
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None
    ts: UtcDateTime
