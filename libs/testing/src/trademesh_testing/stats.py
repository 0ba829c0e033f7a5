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


def verdicts(targets: dict[str, tuple[float, str]], figures: dict[str, float]) -> list[str]:
    """Per target `name: (bound, "<=" or ">=")`, whether the figure of that name meets it:
    `"p50_ms <= 20: met (12.3)"`, or MISSED."""
    said = []
    for name, (bound, sense) in targets.items():
        value = figures[name]
        met = value <= bound if sense == "<=" else value >= bound
        said.append(f"{name} {sense} {bound:g}: {'met' if met else 'MISSED'} ({value:.3g})")
    return said
