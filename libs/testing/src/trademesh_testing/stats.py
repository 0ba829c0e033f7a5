"""Percentiles of latencies, as the benchmarks under benchmarks/ report them."""

from __future__ import annotations

from statistics import quantiles


def pct(values: list[float], *cuts: int) -> list[float]:
    """The given percentiles (1..99) of `values`; nan when there are none."""
    if not values:
        return [float("nan")] * len(cuts)
    if len(values) == 1:
        return [values[0]] * len(cuts)
    table = quantiles(values, n=100, method="inclusive")
    return [table[c - 1] for c in cuts]


def ms_summary(values: list[float]) -> str:
    """One line: p50, p95, p99 and max of latencies in milliseconds, and how many there are."""
    p50, p95, p99 = pct(values, 50, 95, 99)
    top = max(values) if values else float("nan")
    return f"p50 {p50:8.2f}  p95 {p95:8.2f}  p99 {p99:8.2f}  max {top:8.2f}  (n={len(values)})"
