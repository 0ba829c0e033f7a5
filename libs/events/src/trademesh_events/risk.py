"""Risk events, keyed by account: what an account may trade, and why that changed."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, Self

from pydantic import model_validator

from trademesh_events.base import Event
from trademesh_events.ids import AccountId, UserId, UtcDateTime
from trademesh_events.orders import Reason


class TradingState(StrEnum):
    """What an account may do: trade (ACTIVE), only reduce positions (REDUCING), nothing but
    cancel (HALTED)."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


class TradingStateReason(StrEnum):
    """Why a trading state changed."""

    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"  # the day's realised loss reached the limit: REDUCING
    KILL_SWITCH_ENGAGED = "KILL_SWITCH_ENGAGED"  # the account's kill switch: HALTED
    KILL_SWITCH_RELEASED = "KILL_SWITCH_RELEASED"  # back to the state set on the account
    GLOBAL_KILL_SWITCH_ENGAGED = "GLOBAL_KILL_SWITCH_ENGAGED"  # the platform's: HALTED
    GLOBAL_KILL_SWITCH_RELEASED = "GLOBAL_KILL_SWITCH_RELEASED"  # the platform's: ACTIVE
    MANUAL = "MANUAL"  # an admin set the state: a halt, a reduce, a resume


_PLATFORM_REASONS = frozenset(
    {TradingStateReason.GLOBAL_KILL_SWITCH_ENGAGED, TradingStateReason.GLOBAL_KILL_SWITCH_RELEASED}
)


class TradingStateChanged(Event):
    """An account's trading state changed from `old_state` to `new_state` (risk decides it, and
    publishes it in the transaction that changes it: once per change, never for a non-change).

    The account's trading state is HALTED while its kill switch is engaged, and otherwise the
    state set on it (by an admin, or REDUCING by its daily loss limit). `account_id` None is the
    platform's trading state, which the global kill switch sets and every account is under: an
    account may trade as the stricter of its own state and the platform's says.
    `changed_by` is the user who acted (a kill switch, a state set by hand); None when risk
    decided alone (the daily loss limit). `message` is the acting user's reason as given, or the
    figures of a limit reached."""

    type: Literal["trademesh.risk.trading_state_changed"] = "trademesh.risk.trading_state_changed"
    account_id: AccountId | None
    old_state: TradingState
    new_state: TradingState
    reason: TradingStateReason
    message: Reason | None = None
    changed_by: UserId | None = None
    changed_at: UtcDateTime

    @model_validator(mode="after")
    def _a_change_of_its_own(self) -> Self:
        if self.old_state is self.new_state:
            raise ValueError("a trading state change has a new state different from the old one")
        platform = self.account_id is None
        if platform != (self.reason in _PLATFORM_REASONS):
            raise ValueError(
                "the global kill switch changes the platform's state (no account_id), and only it"
            )
        if platform and TradingState.REDUCING in (self.old_state, self.new_state):
            raise ValueError("the platform's trading state is ACTIVE or HALTED")
        return self
