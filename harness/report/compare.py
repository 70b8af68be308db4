"""``deqbench compare A B``: the cells two runs share, side by side, as ratios B / A.

Cells are matched on their id without a sweep's ``@variant`` (strategy/problem/query) and
their ``size`` string, so a sweep's ``analytic/tanh/grad@m=64`` meets a plain run's
``analytic/tanh/grad`` at m=64. Where one side holds a cell more than once (several runs in
one export), the median of its measurements is used and its worst status.

A change is beyond the threshold when a ratio is above ``threshold`` or below
``1/threshold``; status changes are changes too. Those come first, largest first. A
regression (what ``--fail-on-regression FACTOR`` fails on) is a shared cell that got
slower, or hungrier in peak memory or autograd-saved bytes, by more than FACTOR, or went
from ok to wrong, diverged, error, timeout, oom or killed. Memory differences under
:data:`MEMORY_FLOOR_BYTES` are never a regression (the resident set moves in pages).
Error ratios are shown but not judged: a verdict change is what matters.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from deqbench.harness.report import data as rd
from deqbench.harness.report.figures import Made, order_strategies
from deqbench.harness.results.status import Status

KEY = ["base_cell", "size"]
#: (column, name in tables, judged for regressions)
METRICS = (
    ("time_median", "time", True),
    ("peak_memory", "peak memory", True),
    ("saved_tensor_bytes", "saved bytes", True),
    ("relative_error", "error", False),
)
MEMORY_FLOOR_BYTES = 64 * 1024
STATUS_RANK = {
    s: i
    for i, s in enumerate(["ok", "unsupported", "wrong", "diverged", "error", "timeout", "oom", "killed"])
}


def collapse(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (base cell, size): median metrics, worst status."""
    cells = cells.assign(rank=cells["status"].map(lambda s: STATUS_RANK.get(s, len(STATUS_RANK))))
    worst = cells.sort_values("rank").groupby(KEY, sort=False).tail(1).set_index(KEY)
    columns = [m for m, _, _ in METRICS]
    medians = cells.groupby(KEY, sort=False)[columns].median()
    ident = worst[["strategy", "problem", "query", "status", "expected_exact", "message"]]
    return ident.join(medians)


def compare_cells(a: pd.DataFrame, b: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The shared cells with A's and B's values, B / A ratios, flags and the order to list them."""
    left, right = collapse(rd.cell_table(a)), collapse(rd.cell_table(b))
    shared = left.join(right, lsuffix="_a", rsuffix="_b", how="inner").reset_index()
    for column, _, _ in METRICS:
        before, after = shared[f"{column}_a"], shared[f"{column}_b"]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = after / before
        ratio = ratio.where(~((before == 0) & (after == 0)), 1.0)
        shared[f"{column}_ratio"] = ratio
    shared["status_changed"] = shared["status_a"] != shared["status_b"]
    shared["to_wrong"] = (shared["status_a"] == Status.OK) & ~shared["status_b"].isin(
        [Status.OK, Status.UNSUPPORTED]
    )
    shared["change"] = shared.apply(lambda row: change_size(row, threshold), axis=1)
    shared["beyond"] = shared["status_changed"] | (shared["change"] > math.log(threshold))
    shared["changes"] = shared.apply(lambda row: describe(row, threshold), axis=1)
    shared = shared.sort_values(
        ["beyond", "to_wrong", "change"], ascending=[False, False, False], kind="stable"
    )
    shared["strategy"] = shared["strategy_a"]
    return shared.reset_index(drop=True)


def measurable(row, column: str) -> bool:
    before, after = row[f"{column}_a"], row[f"{column}_b"]
    if pd.isna(before) or pd.isna(after):
        return False
    memory = column in ("peak_memory", "saved_tensor_bytes")
    return not (memory and abs(after - before) < MEMORY_FLOOR_BYTES)


def change_size(row, threshold: float) -> float:
    """The largest |log ratio| of the judged metrics (0 when nothing is measurable)."""
    sizes = [0.0]
    for column, _, judged in METRICS:
        ratio = row[f"{column}_ratio"]
        if judged and measurable(row, column) and ratio > 0 and np.isfinite(ratio):
            sizes.append(abs(math.log(ratio)))
        elif judged and measurable(row, column) and not np.isfinite(ratio):
            sizes.append(math.inf)
    return max(sizes)


def describe(row, threshold: float) -> str:
    words = []
    if row["status_changed"]:
        words.append(f"{row['status_a']} → {row['status_b']}")
    for column, name, judged in METRICS:
        ratio = row[f"{column}_ratio"]
        if not judged or not measurable(row, column):
            continue
        if ratio > threshold:
            words.append(f"{name} ×{ratio:.3g}" if np.isfinite(ratio) else f"{name} from 0")
        elif ratio < 1 / threshold:
            words.append(f"{name} ×{ratio:.3g}")
    return ", ".join(words)


def regressions(shared: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Shared cells slower or hungrier by more than ``factor``, or gone from ok to wrong."""

    def regressed(row) -> bool:
        if row["to_wrong"]:
            return True
        for column, _, judged in METRICS:
            if judged and measurable(row, column) and row[f"{column}_ratio"] > factor:
                return True
        return False

    return shared[shared.apply(regressed, axis=1)] if len(shared) else shared


# ------------------------------------------------------------------ output
def format_ratio(value: float) -> str:
    if pd.isna(value):
        return "—"
    if not np.isfinite(value):
        return "∞"
    return f"{value:.3g}×"


def ratio_rows(shared: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    from deqbench.harness.report.summary import format_bytes, format_error, format_seconds

    header = [
        "cell",
        "size",
        "status A → B",
        "time A",
        "time B",
        "B/A",
        "peak mem A",
        "peak mem B",
        "B/A",
        "saved A",
        "saved B",
        "B/A",
        "error A",
        "error B",
        "B/A",
        "changes",
    ]
    rows = []
    for _, r in shared.iterrows():
        status = r["status_a"] if not r["status_changed"] else f"{r['status_a']} → {r['status_b']}"
        rows.append(
            [
                r["base_cell"],
                r["size"],
                status,
                format_seconds(r["time_median_a"]),
                format_seconds(r["time_median_b"]),
                format_ratio(r["time_median_ratio"]),
                format_bytes(r["peak_memory_a"]),
                format_bytes(r["peak_memory_b"]),
                format_ratio(r["peak_memory_ratio"]),
                format_bytes(r["saved_tensor_bytes_a"]),
                format_bytes(r["saved_tensor_bytes_b"]),
                format_ratio(r["saved_tensor_bytes_ratio"]),
                format_error(r["relative_error_a"]),
                format_error(r["relative_error_b"]),
                format_ratio(r["relative_error_ratio"]),
                r["changes"],
            ]
        )
    return header, rows


def markdown(shared: pd.DataFrame, a_name: str, b_name: str, threshold: float) -> str:
    from deqbench.harness.report.documents import Table, markdown_table

    header, rows = ratio_rows(shared)
    beyond = int(shared["beyond"].sum())
    lines = [
        "# deqbench compare",
        "",
        f"A: `{a_name}`  ",
        f"B: `{b_name}`",
        "",
        f"{len(shared)} shared cells (matched on cell id and size); {beyond} changed beyond ×{threshold:g} "
        "(listed first, largest change first). Ratios are B / A: above 1× B is slower, hungrier or less "
        "accurate.",
        "",
        markdown_table(Table(header, rows)),
        "",
    ]
    return "\n".join(lines)


def compare_figures(shared: pd.DataFrame, out: Path, formats: list[str], threshold: float) -> list[Made]:
    """A against B for time, peak memory, saved bytes and error: one point per shared cell."""
    from deqbench.harness.report.figures import (
        ERROR_FLOOR,
        MIB,
        libraries,
        save,
        strategy_legend,
        strategy_style,
        tidy_log_axis,
    )

    plt, sns = libraries()
    panels = [
        ("time_median", "time per query [s]", 1.0),
        ("peak_memory", "peak memory [MiB]", MIB),
        ("saved_tensor_bytes", "autograd saved [MiB]", MIB),
        ("relative_error", "worst relative error", 1.0),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 1.5, 4.6), squeeze=False)
    for ax, (column, label, scale) in zip(axes[0], panels, strict=True):
        data = shared[[f"{column}_a", f"{column}_b", "strategy"]].dropna()
        floor = ERROR_FLOOR if column == "relative_error" else 1e-12
        a = data[f"{column}_a"].clip(lower=floor * scale) / scale
        b = data[f"{column}_b"].clip(lower=floor * scale) / scale
        for strategy in order_strategies(data["strategy"]):
            chosen = data["strategy"] == strategy
            color, marker = strategy_style(strategy)
            sns.scatterplot(
                x=a[chosen], y=b[chosen], ax=ax, color=color, marker=marker, s=55, edgecolor="white"
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        if len(data):
            low = min(a.min(), b.min()) / 1.5
            high = max(a.max(), b.max()) * 1.5
            line = np.geomspace(low, high, 10)
            ax.plot(line, line, color="#444", lw=1)
            ax.fill_between(line, line / threshold, line * threshold, color="#999", alpha=0.18, lw=0)
            ax.set_xlim(low, high)
            ax.set_ylim(low, high)
            tidy_log_axis(ax, "x", decades_only=column == "relative_error")
            tidy_log_axis(ax, "y", decades_only=column == "relative_error")
        else:
            ax.text(0.5, 0.5, "nothing shared", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(f"A: {label}")
        ax.set_ylabel(f"B: {label}\n(below the diagonal: B is better)")
        ax.set_title(label.split(" [")[0])
    fig.suptitle(
        f"B against A, one point per shared cell (grey band: within ×{threshold:g})",
        x=0.01,
        ha="left",
        y=1.02,
    )
    fig.tight_layout()
    strategy_legend(fig, order_strategies(shared["strategy"]), loc="center left", bbox_to_anchor=(1.0, 0.5))
    name = "compare"
    caption = (
        "Each point a cell both runs measured; on the diagonal B equals A, below it B is faster, leaner or "
        f"more accurate; the grey band is ×{threshold:g} either way."
    )
    return [Made(name, "B against A", caption, save(fig, out, name, formats))]
