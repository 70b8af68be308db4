"""Whether two cells' times differ by more than their noise.

Two questions, two rules:

- :func:`within_noise` (descriptive, for a report's ratios): the two cells' repeat ranges
  overlap (the slowest repeat of the faster cell is at or above the quickest repeat of the
  slower one). Cells without their repeats (folders written before rows kept each
  repeat's time) use median ± IQR/2, the band the time figures draw.
- :func:`significant` (an alarm, for ``deqbench compare``): the Mann-Whitney U rank test on
  the two cells' repeats, two-sided, at :data:`ALPHA`, as asv compares benchmarks. With few
  repeats the test cannot reach ALPHA however the times fall (3 against 3: the smallest
  p-value is 0.1), and then nothing is called significant: :func:`smallest_p` says so, and
  compare prints how many repeats would be needed. Without repeats, the median ± IQR bands
  must be apart (a rougher rule, said so in the output).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Two-sided level of the rank test. Lower than the usual 0.05 because a comparison tests
#: every shared cell at once: 20 cells at 0.05 would raise about one false alarm a run.
ALPHA = 0.01


@dataclass(frozen=True)
class Timing:
    """One cell's time: its median, interquartile range and (where stored) every repeat."""

    median: float
    iqr: float = math.nan
    repeats: tuple[float, ...] = ()

    @property
    def band(self) -> tuple[float, float]:
        """The repeats' range, or median ± IQR/2 without repeats (± 0 without an IQR)."""
        if self.repeats:
            return min(self.repeats), max(self.repeats)
        half = 0.0 if math.isnan(self.iqr) else self.iqr / 2
        return self.median - half, self.median + half


def timing(cell) -> Timing:
    """The :class:`Timing` of a cell-table row (``time_median``, ``time_iqr``, ``times``)."""
    repeats = cell.get("times", ()) if hasattr(cell, "get") else ()
    repeats = tuple(float(t) for t in repeats) if isinstance(repeats, list | tuple | np.ndarray) else ()
    return Timing(float(cell["time_median"]), float(cell["time_iqr"]), repeats)


def within_noise(a: Timing, b: Timing) -> bool:
    """Whether the two cells' bands overlap: their difference is not told apart from noise."""
    (low_a, high_a), (low_b, high_b) = a.band, b.band
    return high_a >= low_b and high_b >= low_a


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p-value a rank test of n against m repeats can give."""
    return 2.0 / math.comb(n + m, n) if n and m else 1.0


@dataclass(frozen=True)
class Test:
    significant: bool
    p: float  # NaN where no rank test was possible
    how: str  # one line: what was tested, for the output


def significant(a: Timing, b: Timing, alpha: float = ALPHA) -> Test:
    """Whether B's time differs from A's beyond the noise (see the module's docstring)."""
    n, m = len(a.repeats), len(b.repeats)
    if n and m:
        if smallest_p(n, m) >= alpha:
            return Test(False, math.nan, f"{n} vs {m} repeats cannot reach p < {alpha:g}")
        from scipy.stats import mannwhitneyu

        # the exact distribution while it is cheap and no time is shared between the sides (ties
        # within one side leave the ranks across sides unchanged); else the normal approximation
        exact = n + m <= 40 and not set(a.repeats) & set(b.repeats)
        test = mannwhitneyu(
            a.repeats, b.repeats, alternative="two-sided", method="exact" if exact else "asymptotic"
        )
        p = float(test.pvalue)
        return Test(p < alpha, p, f"Mann-Whitney U p = {p:.2g}")
    apart = not within_noise(a, b)
    return Test(apart, math.nan, "median ± IQR/2 bands " + ("apart" if apart else "overlap"))


def repeats_needed(alpha: float = ALPHA) -> int:
    """The fewest repeats on each side with which the rank test can reach ``alpha``."""
    n = 1
    while smallest_p(n, n) >= alpha:
        n += 1
    return n
