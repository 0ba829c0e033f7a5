"""One trial of an optimisation: the backtest of one parameter set over one window of the bars,
as a function a worker process runs (pure, picklable in and out).

The bars cross to a worker process as one pickled blob per series, and the process unpickles a
series once and keeps it (SharedBars), so that a trial costs its backtest, not the transfer of
thousands of Bar objects.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import uuid4

from pydantic import ValidationError
from trademesh_events.ids import InstrumentId
from trademesh_events.marketdata import Bar

from trademesh_trading.backtest import Backtester, Sizing
from trademesh_trading.buying_power import AccountTerms
from trademesh_trading.fills import FillModel
from trademesh_trading.results import stats_data
from trademesh_trading.strategy import Strategy

_KEPT_SERIES = 2
"""Series a worker process keeps unpickled (an optimisation at a time uses one)."""
_series: OrderedDict[str, list[Bar]] = OrderedDict()


class SharedBars:
    """A series of bars that worker processes receive once: it pickles as a key and the bars'
    blob (made once), and unpickles to the process's copy when the process already has it.

    Workers started with preload()'s initializer have the series from their start, and then
    it pickles as its key alone: a trial's job no longer carries the blob at all."""

    __slots__ = ("_blob", "_preloaded", "bars", "key")

    def __init__(self, bars: Sequence[Bar], key: str | None = None) -> None:
        self.key = key or uuid4().hex
        self.bars: list[Bar] = list(bars)
        self._blob: bytes | None = None
        self._preloaded = False

    def _dumped(self) -> bytes:
        if self._blob is None:
            self._blob = pickle.dumps(self.bars, protocol=pickle.HIGHEST_PROTOCOL)
        return self._blob

    def preload(self) -> tuple[Callable[[str, bytes], SharedBars], tuple[str, bytes]]:
        """(initializer, initargs) for a process pool whose workers get the series at start;
        use the pool for no other series."""
        self._preloaded = True
        return _attach, (self.key, self._dumped())

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self._preloaded:
            return (_attached, (self.key,))
        return (_attach, (self.key, self._dumped()))


def _attach(key: str, blob: bytes) -> SharedBars:
    bars = _series.get(key)
    if bars is None:
        bars = pickle.loads(blob)  # noqa: S301 - the blob is this program's own, from its parent
        _series[key] = bars
        while len(_series) > _KEPT_SERIES:
            _series.popitem(last=False)
    return _attached(key)


def _attached(key: str) -> SharedBars:
    bars = _series.get(key)
    if bars is None:
        raise LookupError(f"this worker process has no series {key}: start it with preload()")
    _series.move_to_end(key)
    shared = SharedBars.__new__(SharedBars)
    shared.key, shared.bars, shared._blob, shared._preloaded = key, bars, None, False
    return shared


@dataclass(frozen=True)
class BacktestSpec:
    """Everything of a trial's backtest but the strategy and the bars: the account and fills."""

    instrument_id: InstrumentId
    timeframe: str
    currency: str | None  # of the money in the statistics (the instrument's quote)
    cash: Decimal = Decimal(10_000)
    slippage_bps: Decimal = Decimal(0)
    fee_bps: Decimal = Decimal(0)
    sizing: Sizing = field(default_factory=Sizing)
    terms: AccountTerms = field(default_factory=AccountTerms)

    def backtester(self, strategy: Strategy[Any]) -> Backtester:
        return Backtester(
            strategy,
            instrument_id=self.instrument_id,
            timeframe=self.timeframe,
            cash=self.cash,
            fill_model=FillModel(slippage_bps=self.slippage_bps, fee_bps=self.fee_bps),
            sizing=self.sizing,
            terms=self.terms,
        )


@dataclass(frozen=True)
class TrialJob:
    strategy: type[Strategy[Any]]
    params: dict[str, Any]
    bars: SharedBars
    window: tuple[int, int]  # bars[start:stop]
    spec: BacktestSpec


@dataclass(frozen=True)
class TrialOutcome:
    """The statistics of a trial (trademesh_trading.results.stats_data), or why its
    parameters are not valid."""

    stats: dict[str, Any] | None
    invalid: str | None = None


def run_trial(job: TrialJob) -> TrialOutcome:
    """Backtest `job.params` over the job's window. Parameters the strategy's config refuses
    (a rule across them, as fast < slow) make an invalid outcome, not an error; what the
    strategy raises while it runs propagates."""
    try:
        config = job.strategy.config_class.model_validate(job.params)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or job.strategy.name}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        return TrialOutcome(None, reasons)
    start, stop = job.window
    result = job.spec.backtester(job.strategy(config)).run(job.bars.bars[start:stop])
    return TrialOutcome(stats_data(result.stats, job.spec.currency))
