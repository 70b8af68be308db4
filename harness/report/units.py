"""Bytes, seconds, relative errors and ratios as text: one formatter for every table.

``deqbench show``, ``report``, ``compare``, the training table and ``cache info`` all print
through these, so 1.5 KiB reads the same everywhere. A memory reading below what its meter
resolves (:data:`metrics.MEMORY_RESOLUTION`) is written as such ("< 64 KiB"), never as 0 B.
"""

from __future__ import annotations

import math

from deqbench.harness.results.metrics import resolution

MISSING = "—"
BINARY_UNITS = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6))


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_bytes(value: float | None) -> str:
    """1536 -> '1.5 KiB'; under a KiB as whole bytes; None/NaN as '—'."""
    if missing(value):
        return MISSING
    for unit, scale in BINARY_UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


def below_resolution(value: float | None, metric: str) -> bool:
    """Whether a memory reading is under what its meter resolves (0 B included)."""
    return not missing(value) and value < resolution(metric)


def format_memory(value: float | None, metric: str) -> str:
    """A memory reading of ``metric``; below the meter's resolution: '< 64 KiB'."""
    if below_resolution(value, metric) and resolution(metric) > 1:
        return f"< {format_bytes(resolution(metric))}"
    return format_bytes(value)


def format_seconds(value: float | None) -> str:
    """0.0123 -> '12.3 ms'; three significant digits in s, ms, µs or ns."""
    if missing(value):
        return MISSING
    for unit, scale in TIME_UNITS:
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.3g} ns"


def format_spread(median: float | None, spread: float | None) -> str:
    """'12.3 ms ± 0.4 ms': a median time and half its interquartile range."""
    if missing(median):
        return MISSING
    if missing(spread):
        return format_seconds(median)
    return f"{format_seconds(median)} ± {format_seconds(spread / 2)}"


def format_error(value: float | None) -> str:
    """A relative error in scientific notation: '2.8e-11'."""
    return MISSING if missing(value) else f"{value:.1e}"


def format_ratio(value: float | None) -> str:
    """'3.3×'; a missing or infinite ratio (a zero denominator) as '—'."""
    if missing(value) or not math.isfinite(value):
        return MISSING
    return f"{value:.2g}×" if value < 10 else f"{value:.0f}×"
