"""Risk's configuration in memory: the limits and instrument rules intents are checked against.

They change rarely (through risk's API and the venue sync) and are read for every intent, so
each process keeps what it read. It is never stale: a trigger bumps `config_version` in the
transaction of every change of the limits or the rules (migration 20261206210900), and every
batch of intents or fills reads that number in the statement that reads its accounts' state. A
number above the one the memory was read at drops the memory; what a batch needs and the memory
lacks is read in one statement. So a change committed before a batch read its state is seen by
that batch, on every replica (docs/decisions/0109-risk-config-cache.md).

Why the freshness holds: the maps kept for version v are made when a batch sees v, and every
row put in them is read by a statement that starts after that, so it is at least as new as v;
any change since bumps the version past v, and the next batch drops them. A batch that saw an
older version than the memory's uses the memory: it is newer still.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import asyncpg
from trademesh_events.ids import AccountId, InstrumentId

from trademesh_risk.engine import InstrumentRules, Limits, ceilings, effective, rules_in_force
from trademesh_risk.store import RiskStore, RuleSource

# How many entries the memory holds at most before it starts again (it reloads what it needs):
# a bound on memory, far above the accounts and instruments a deployment trades.
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class Config:
    """The limits and rules in force for one batch's accounts and instruments."""

    default_limits: Limits
    instrument_bounds: InstrumentRules
    own: Mapping[AccountId, Limits | None]
    admin: Mapping[AccountId, Limits | None]
    per_instrument: Mapping[tuple[AccountId, InstrumentId], Limits | None]
    rules: Mapping[InstrumentId, Mapping[RuleSource, InstrumentRules]]

    def limits(self, account_id: AccountId, instrument_id: InstrumentId | None) -> Limits:
        """As Decider.limits_in_force: the ceilings, the account's own limits and its limits
        for the instrument, the stricter of all."""
        per_instrument = (
            None if instrument_id is None else self.per_instrument[(account_id, instrument_id)]
        )
        return effective(
            ceilings(self.default_limits, self.admin[account_id]),
            self.own[account_id],
            per_instrument,
        )

    def rules_of(self, instrument_id: InstrumentId) -> InstrumentRules | None:
        """As Decider.rules_in_force: an admin's override, else the venue's, else the bounds."""
        layers = self.rules[instrument_id]
        return rules_in_force(layers.get("venue"), layers.get("admin"), self.instrument_bounds)


class ConfigCache:
    def __init__(
        self, store: RiskStore, default_limits: Limits, instrument_bounds: InstrumentRules
    ) -> None:
        self.store = store
        self.default_limits = default_limits
        self.instrument_bounds = instrument_bounds
        self.version = -1  # nothing read yet
        self.loads = 0  # statements that read configuration (tests count them)
        self._own: dict[AccountId, Limits | None] = {}
        self._admin: dict[AccountId, Limits | None] = {}
        self._per_instrument: dict[tuple[AccountId, InstrumentId], Limits | None] = {}
        self._rules: dict[InstrumentId, Mapping[RuleSource, InstrumentRules]] = {}

    def _drop(self, version: int) -> None:
        self.version = version
        self._own, self._admin, self._per_instrument, self._rules = {}, {}, {}, {}

    async def get(
        self,
        conn: asyncpg.Connection,
        version: int,
        account_ids: Iterable[AccountId],
        instrument_ids: Iterable[InstrumentId] = (),
        pairs: Iterable[tuple[AccountId, InstrumentId]] = (),
    ) -> Config:
        """The configuration of these accounts, instruments and (account, instrument) pairs, at
        least as new as `version` (read with the accounts' state, in this transaction)."""
        if version > self.version:
            self._drop(version)
        elif len(self._own) + len(self._per_instrument) + len(self._rules) > MAX_ENTRIES:
            self._drop(self.version)
        # This batch's view: the memory's maps as they are now. A newer batch may replace them
        # (drop) while this one waits for its load; then the rows it loads go into the maps it
        # holds, which only batches that began before the drop still use.
        own, admin = self._own, self._admin
        per_instrument, rules = self._per_instrument, self._rules
        accounts = [a for a in dict.fromkeys(account_ids) if a not in own]
        instruments = [i for i in dict.fromkeys(instrument_ids) if i not in rules]
        keys = [p for p in dict.fromkeys(pairs) if p not in per_instrument]
        if accounts or instruments or keys:
            self.loads += 1
            rows = await self.store.config_of(conn, accounts, keys, instruments)
            for account_id in accounts:
                own[account_id] = rows.own.get(account_id)
                admin[account_id] = rows.admin.get(account_id)
            for key in keys:
                per_instrument[key] = rows.per_instrument.get(key)
            for instrument_id in instruments:
                rules[instrument_id] = rows.rules.get(instrument_id, {})
        return Config(
            self.default_limits, self.instrument_bounds, own, admin, per_instrument, rules
        )
