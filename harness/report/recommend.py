"""Which strategy for my problem, and at what cost: the recommendation block.

For each problem, size, query and run condition (settings that differ between runs), the
strategies that claim exactness on the query and passed the oracle are ranked by median
time; each comes with its memory and its ratio to the best in both (the fastest for time,
the leanest for memory). A time ratio whose repeats overlap the fastest's is marked "≈"
(within noise, :func:`noise.within_noise`); memory under the meter's resolution is shown as
such and never divided. Strategies that are not exact there (wrong, diverged, raised,
stopped, or right without claiming it) are named apart, with their error or status.

Per problem, one line: the strategy that is fastest and exact on most of its queries.
Across a sweep (two or more values of a size knob), :func:`growth` fits each strategy's
time and memory against the knob on log-log axes: the exponent and one standard error of
the least-squares slope (over every repeat where the rows keep them).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deqbench.harness.report import data as rd
from deqbench.harness.report import noise
from deqbench.harness.report.figures import order_queries, order_strategies
from deqbench.harness.report.units import (
    below_resolution,
    format_error,
    format_memory,
    format_ratio,
    format_spread,
)
from deqbench.harness.results.metrics import resolution

#: Below this median time per query, a figure's times are mostly per-call overhead and
#: timer noise: the report says so.
TINY_SECONDS = 3e-3
#: A memory ratio is shown only beyond this factor (smaller ones are within page noise).
MEMORY_RATIO_SHOWN = 1.25
#: Above this many (problem, size, query, condition) groups, the report lists the one-line
#: answers and the overall counts, not every group's ranking.
MAX_DETAILED = 40


@dataclass
class Ranked:
    strategy: str
    timing: noise.Timing
    memory: float
    memory_metric: str
    time_ratio: float = 1.0
    memory_ratio: float = math.nan
    #: the leanest reading was below the meter's resolution: the ratio is a lower bound
    memory_ratio_bound: bool = False
    within_noise: bool = False

    def text(self, first: bool) -> str:
        memory = format_memory(self.memory, self.memory_metric)
        if first:
            text = f"{self.strategy} {format_spread(self.timing.median, self.timing.iqr)}, {memory}"
            if self.memory_ratio > MEMORY_RATIO_SHOWN:  # the fastest is not the leanest
                bound = "≥" if self.memory_ratio_bound else ""
                text += f" ({bound}{format_ratio(self.memory_ratio)} the leanest's memory)"
            return text
        mark = "≈" if self.within_noise else ""
        parts = [f"{mark}{format_ratio(self.time_ratio)} the time" + (" (within noise)" if mark else "")]
        if self.memory_ratio > MEMORY_RATIO_SHOWN:
            bound = "≥" if self.memory_ratio_bound else ""
            parts.append(f"{bound}{format_ratio(self.memory_ratio)} the memory")
        return f"{self.strategy} " + ", ".join(parts)


@dataclass
class Apart:
    """A strategy that is not exact on the query here: why, and its error."""

    strategy: str
    why: str
    error: float

    def text(self) -> str:
        error = "" if math.isnan(self.error) else f", error {format_error(self.error)}"
        return f"{self.strategy} ({self.why}{error})"


@dataclass
class Recommendation:
    problem: str
    query: str
    size: str
    condition: str
    ranked: list[Ranked] = field(default_factory=list)
    apart: list[Apart] = field(default_factory=list)

    @property
    def title(self) -> str:
        where = ", ".join(filter(None, [self.size, self.condition]))
        return f"{self.problem} {self.query}" + (f" ({where})" if where else "")

    def line(self) -> str:
        """'tanh grad (m=8): analytic 5.1 ms ± 0.2 ms, < 64 KiB; unrolled 2.1× the time. ...'"""
        if self.ranked:
            text = "; ".join(r.text(i == 0) for i, r in enumerate(self.ranked))
        else:
            text = "no strategy exact here"
        if self.apart:
            text += ". Not exact here: " + ", ".join(a.text() for a in self.apart)
        return f"{self.title}: {text}."

    @property
    def best(self) -> str | None:
        return self.ranked[0].strategy if self.ranked else None


@dataclass
class Growth:
    problem: str
    query: str
    strategy: str
    knob: str
    condition: str
    sizes: int
    time_exponent: float
    time_error: float
    memory_exponent: float
    memory_error: float
    memory_note: str = ""

    def text(self) -> str:
        time = exponent_text(self.time_exponent, self.time_error)
        memory = self.memory_note or exponent_text(self.memory_exponent, self.memory_error)
        where = f", {self.condition}" if self.condition else ""
        return (
            f"{self.problem} {self.query}{where}: {self.strategy} time ∝ {self.knob}^{time}, "
            f"memory ∝ {self.knob}^{memory} ({self.sizes} sizes)"
        )


def exponent_text(exponent: float, error: float) -> str:
    if math.isnan(exponent):
        return "—"
    return f"{exponent:.2f}" + ("" if math.isnan(error) else f" ± {error:.2f}")


# ------------------------------------------------------------------ ranking
def why_apart(cell: dict) -> str:
    if cell["verdict"] == rd.VERDICT_OK:
        return "right here, exactness not claimed"
    if cell["verdict"] == rd.VERDICT_NOT_CLAIMED:
        return f"{cell['status']}, exactness not claimed"
    if cell["verdict"] == rd.VERDICT_FAILED:
        return f"{cell['status']} though claimed exact"
    return str(cell["status"])


def is_exact(cell: dict) -> bool:
    """Claimed exact on the query, verified against the oracle, and timed."""
    return (
        bool(cell["expected_exact"]) and cell["verdict"] == rd.VERDICT_OK and not pd.isna(cell["time_median"])
    )


def one_per_strategy(cells: list[dict]) -> list[dict]:
    """A cell per strategy; of several runs of one cell the worst verdict stands (then the slowest)."""
    chosen: dict[str, dict] = {}
    for cell in cells:
        rank = (
            cell["verdict"] != rd.VERDICT_OK,
            -math.inf if pd.isna(cell["time_median"]) else cell["time_median"],
        )
        kept = chosen.get(cell["strategy"])
        if kept is None or rank >= kept["_rank"]:
            chosen[cell["strategy"]] = {**cell, "_rank": rank}
    return list(chosen.values())


def recommend_group(cells: list[dict], problem: str, query: str, size: str, condition: str):
    """The ranking of one (problem, size, query, condition) from its cells (dicts of the
    cell table's columns); None if nothing was run."""
    run = one_per_strategy([c for c in cells if c["verdict"] != rd.VERDICT_UNSUPPORTED])
    if not run:
        return None
    recommendation = Recommendation(problem, query, size, condition)
    recommendation.ranked = ranked([c for c in run if is_exact(c)])
    order = {name: i for i, name in enumerate(order_strategies(c["strategy"] for c in run))}
    apart = sorted((c for c in run if not is_exact(c)), key=lambda c: order[c["strategy"]])
    recommendation.apart = [Apart(c["strategy"], why_apart(c), float(c["relative_error"])) for c in apart]
    return recommendation


def ranked(exact: list[dict]) -> list[Ranked]:
    exact = sorted(exact, key=lambda c: c["time_median"])
    entries = [
        Ranked(c["strategy"], noise.timing(c), float(c["peak_memory"]), str(c["memory_metric"]))
        for c in exact
    ]
    if not entries:
        return entries
    fastest = entries[0]
    for entry in entries[1:]:
        entry.time_ratio = entry.timing.median / fastest.timing.median
        entry.within_noise = noise.within_noise(fastest.timing, entry.timing)
    # an unresolved reading counts as the meter's resolution: the leanest is at most that, and
    # a ratio against it is a lower bound; unresolved readings get no ratio of their own
    seen = [max(e.memory, resolution(e.memory_metric)) for e in entries if not math.isnan(e.memory)]
    leanest = min(seen) if seen else math.nan
    bound = any(below_resolution(e.memory, e.memory_metric) for e in entries)
    for entry in entries:
        if not math.isnan(entry.memory) and not below_resolution(entry.memory, entry.memory_metric):
            entry.memory_ratio = entry.memory / leanest
            entry.memory_ratio_bound = bound
    return entries


def noise_notes(found: list[Recommendation]) -> list[str]:
    """Per problem: the queries timed under TINY_SECONDS, the strategies whose memory was
    below the meter's resolution."""
    notes = []
    for problem in dict.fromkeys(r.problem for r in found):
        mine = [r for r in found if r.problem == problem and r.ranked]
        tiny = list(dict.fromkeys(r.query for r in mine if r.ranked[0].timing.median < TINY_SECONDS))
        if tiny:
            notes.append(
                f"{problem}: the fastest time is under {TINY_SECONDS * 1e3:.0f} ms on {', '.join(tiny)}: "
                "per-call overhead and timer noise weigh there, and the ranking can change from run to run."
            )
        unresolved = [e for r in mine for e in r.ranked if below_resolution(e.memory, e.memory_metric)]
        if unresolved:
            names = ", ".join(dict.fromkeys(e.strategy for e in unresolved))
            floor = format_memory(0.0, unresolved[0].memory_metric)
            notes.append(
                f"{problem}: peak memory below the meter's resolution ({floor}) in {len(unresolved)} exact "
                f"cell(s) ({names}): shown as such, and no memory ratio is taken against them."
            )
    return notes


#: The cell-table columns a recommendation reads (a narrow copy keeps thousands of cells fast).
COLUMNS = [
    "problem",
    "size",
    "query",
    "strategy",
    "verdict",
    "status",
    "expected_exact",
    "time_median",
    "time_iqr",
    "times",
    "peak_memory",
    "memory_metric",
    "relative_error",
]


def recommendations(cells: pd.DataFrame) -> list[Recommendation]:
    """One :class:`Recommendation` per (problem, size, query, run condition), in run order."""
    if cells.empty:
        return []
    labels = rd.condition_label(cells, rd.varying_settings(cells))
    records = cells[COLUMNS].assign(condition=labels.values).to_dict("records")
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        key = (record["problem"], record["size"], record["condition"], record["query"])
        groups.setdefault(key, []).append(record)
    queries = {q: i for i, q in enumerate(order_queries(cells["query"]))}
    problems = {p: i for i, p in enumerate(dict.fromkeys(cells["problem"]))}
    sizes = {s: i for i, s in enumerate(dict.fromkeys(cells["size"]))}
    found = []
    for key in sorted(groups, key=lambda k: (problems[k[0]], sizes[k[1]], k[2], queries[k[3]])):
        problem, size, condition, query = key
        made = recommend_group(groups[key], problem, query, size, condition)
        if made is not None:
            found.append(made)
    return found


# ---------------------------------------------------------- per problem
def answers(found: list[Recommendation]) -> list[str]:
    """One line per problem: the strategy fastest and exact on most of its (size, query)s."""
    lines = []
    for problem in dict.fromkeys(r.problem for r in found):
        mine = [r for r in found if r.problem == problem]
        wins = Counter(r.best for r in mine if r.best)
        if not wins:
            lines.append(f"{problem}: no strategy was exact on any query.")
            continue
        best, count = wins.most_common(1)[0]
        sizes = len({r.size for r in mine}) > 1
        where = (lambda r: f"{r.query} at {r.size}") if sizes else (lambda r: r.query)  # noqa: E731
        others = list(dict.fromkeys(f"{r.best} on {where(r)}" for r in mine if r.best and r.best != best))
        none = sorted({r.query for r in mine if not r.best})
        line = f"{problem}: use {best} (fastest exact on {count} of {len(mine)} queries and sizes"
        line += f"; {', '.join(others)}" if others else ""
        line += ")"
        if none:
            line += f"; no exact strategy on {', '.join(none)}"
        lines.append(line + ".")
    return lines


def overall(found: list[Recommendation]) -> str:
    """Counts over every group: which strategies were fastest and exact how often."""
    wins = Counter(r.best for r in found if r.best)
    total = len(found)
    parts = [f"{name} in {count}" for name, count in wins.most_common()]
    return f"Fastest exact strategy over {total} (problem, size, query) groups: " + ", ".join(parts) + "."


# ------------------------------------------------------------------ growth
def fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope of log y against log x and its standard error (NaN with two distinct x or fewer
    than three points: no spread to estimate)."""
    if len(np.unique(x)) < 2:
        return math.nan, math.nan
    from scipy.stats import linregress

    if len(x) < 3:
        slope = (math.log(y[-1]) - math.log(y[0])) / (math.log(x[-1]) - math.log(x[0]))
        return slope, math.nan
    result = linregress(np.log(x), np.log(y))
    return float(result.slope), float(result.stderr)


def time_points(cells: pd.DataFrame, knob: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for _, cell in cells.iterrows():
        repeats = [t for t in noise.timing(cell).repeats if t > 0] or [cell["time_median"]]
        xs += [cell[knob]] * len(repeats)
        ys += repeats
    return np.asarray(xs, float), np.asarray(ys, float)


def growth(cells: pd.DataFrame) -> list[Growth]:
    """Time and memory exponents against the size knob with the most values, per strategy."""
    from deqbench.harness.report.figures import size_axis

    exact = cells[(cells["verdict"] == rd.VERDICT_OK) & cells["time_median"].notna()]
    found: list[Growth] = []
    for problem, by_problem in exact.groupby("problem", sort=False):
        knob, others = size_axis(by_problem)
        if knob is None:
            continue
        data = rd.with_knob_columns(by_problem, [knob, *others])
        conditions = [f"knob:{k}" for k in others] + rd.varying_settings(data)
        data = data.assign(condition=rd.condition_label(data, conditions).values)
        column = f"knob:{knob}"
        for (query, strategy, condition), group in data.groupby(["query", "strategy", "condition"]):
            group = group[pd.to_numeric(group[column], errors="coerce") > 0]
            if group[column].nunique() < 2:
                continue
            time_exp, time_err = fit(*time_points(group, column))
            resolved = group[
                ~group.apply(lambda c: below_resolution(c["peak_memory"], c["memory_metric"]), axis=1)
            ]
            memory_note = ""
            if resolved[column].nunique() >= 2:
                memory_exp, memory_err = fit(
                    resolved[column].to_numpy(float), resolved["peak_memory"].to_numpy(float)
                )
            else:
                memory_exp = memory_err = math.nan
                memory_note = "— (below the meter's resolution at most sizes)"
            found.append(
                Growth(
                    problem,
                    query,
                    strategy,
                    knob,
                    condition,
                    group[column].nunique(),
                    time_exp,
                    time_err,
                    memory_exp,
                    memory_err,
                    memory_note,
                )
            )
    order = {name: i for i, name in enumerate(order_strategies(exact["strategy"]))}
    queries = {q: i for i, q in enumerate(order_queries(exact["query"]))}
    return sorted(found, key=lambda g: (g.problem, queries[g.query], g.condition, order[g.strategy]))


# ------------------------------------------------------------------ block
@dataclass
class Block:
    """What a report or ``show`` prints: answers, rankings (or their counts), growth, notes."""

    answers: list[str]
    lines: list[str]
    growth: list[str]
    notes: list[str]


def block(cells: pd.DataFrame) -> Block:
    found = recommendations(cells)
    lines = [overall(found)] if len(found) > MAX_DETAILED else [r.line() for r in found]
    return Block(answers(found), lines, [g.text() for g in growth(cells)], noise_notes(found))


def block_for_rows(rows: pd.DataFrame) -> Block:
    """The block of a run's tidy rows (``deqbench show``)."""
    return block(rd.cell_table(rows))


def print_block(found: Block, console) -> None:
    """The block on a terminal (``deqbench show``); names are printed as text, never as markup."""
    from rich.text import Text

    if not found.answers:
        return
    console.print(Text("Recommendation", style="bold"))
    for line in [*found.answers, *found.lines]:
        console.print(Text(f"  {line}"))
    if found.growth:
        console.print(Text("Growth with size (exponent ± standard error):", style="bold"))
        for line in found.growth:
            console.print(Text(f"  {line}"))
    for line in found.notes:
        console.print(Text(f"  note: {line}", style="dim"))
