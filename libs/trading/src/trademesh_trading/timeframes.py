"""Bar lengths: `1m`, `5m`, `1h`, `1d`, `1w`, any `<n><s|m|h|d|w>`, aligned to the Unix epoch
(weeks to Monday 00:00 UTC, as exchanges' weekly bars are)."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)  # weeks start on Monday, as exchanges' weekly bars do
_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True, order=True)
class Timeframe:
    """A bar length such as `1m`, `5m`, `1h`, `1d` (seconds, minutes, hours, days, weeks)."""

    seconds: int
    label: str = field(compare=False)

    @classmethod
    def parse(cls, label: str) -> Timeframe:
        match = _TIMEFRAME.fullmatch(label)
        if match is None:
            raise ValueError(f"timeframe {label!r}: use <n><s|m|h|d|w>, e.g. 1m, 5m, 1h, 1d")
        return cls(int(match[1]) * _UNIT_SECONDS[match[2]], label)

    @classmethod
    def of_seconds(cls, seconds: int) -> Timeframe:
        """The timeframe `seconds` long, labelled in the largest unit that divides it (86400 ->
        `1d`, 5400 -> `90m`, 2678400 -> `31d`)."""
        if seconds < 1:
            raise ValueError(f"timeframe of {seconds} s: a bar lasts at least 1 s")
        unit = next(u for u in "wdhms" if seconds % _UNIT_SECONDS[u] == 0)
        return cls(seconds, f"{seconds // _UNIT_SECONDS[unit]}{unit}")

    @classmethod
    def of_spacing(cls, times: Iterable[datetime]) -> Timeframe:
        """The bar length of bars opening at `times`: the median gap between consecutive distinct
        times, to the second. The median, not the smallest gap: a day's bars skip weekends and
        holidays, and a file may miss a bar or repeat one. ValueError with fewer than two times."""
        ordered = sorted(set(times))
        gaps = [(b - a).total_seconds() for a, b in pairwise(ordered)]
        if not gaps:
            raise ValueError("fewer than two bar times: the timeframe cannot be inferred")
        return cls.of_seconds(max(round(statistics.median(gaps)), 1))

    @property
    def weekly(self) -> bool:
        return self.label.endswith("w")

    def built_from(self, base: Timeframe) -> bool:
        """Whether bars of `base` add up to bars of this timeframe (same alignment)."""
        return self.seconds % base.seconds == 0 and (self.weekly or not base.weekly)

    @property
    def delta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    def floor(self, ts: datetime) -> datetime:
        """The start of the interval holding `ts`."""
        origin = _MONDAY if self.weekly else _EPOCH
        offset = (ts - origin) // self.delta
        return origin + offset * self.delta

    def ceil(self, ts: datetime) -> datetime:
        """The first interval start at or after `ts`."""
        start = self.floor(ts)
        return start if start == ts else start + self.delta
