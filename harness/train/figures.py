"""The figures of a training report, drawn as :mod:`.figures` draws (seaborn on Agg, each
strategy in its fixed colour and marker, PNG and/or SVG).

Per problem: the training loss against step and against wall time; the test error against
wall time; the drift of every strategy's parameters from the reference strategy's. Lines
are the median over seeds, bands the range (min to max) over seeds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deqbench.harness.report.figures import (
    Made,
    Skipped,
    libraries,
    order_strategies,
    save,
    strategy_legend,
    strategy_style,
)
from deqbench.harness.train.tables import drift_table, step_table, target_error


def seed_band(data: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Median and range over seeds of y at each x (x is shared by the seeds: the step), or,
    for wall time, each seed's curve interpolated onto a common grid of x."""
    if x == "step":
        grouped = data.groupby(x)[y]
        return pd.DataFrame({"median": grouped.median(), "low": grouped.min(), "high": grouped.max()})
    import numpy as np

    curves = [g.sort_values(x) for _, g in data.groupby("seed")]
    end = min(c[x].max() for c in curves)
    start = max(c[x].min() for c in curves)
    if not end > start:
        return pd.DataFrame(columns=["median", "low", "high"])
    grid = np.linspace(start, end, 200)
    values = np.array([np.interp(grid, c[x].to_numpy(), c[y].to_numpy()) for c in curves])
    return pd.DataFrame(
        {"median": np.median(values, 0), "low": values.min(0), "high": values.max(0)}, index=grid
    )


def draw_lines(ax, data: pd.DataFrame, x: str, y: str) -> list[str]:
    """One line (median over seeds) and band (range) per strategy; the strategies drawn."""
    drawn = []
    for strategy in order_strategies(data["strategy"]):
        points = data[(data["strategy"] == strategy) & data[y].notna() & (data[y] > 0)]
        if points.empty:
            continue
        band = seed_band(points, x, y)
        if band.empty:
            continue
        color, marker = strategy_style(strategy)
        ax.plot(band.index, band["median"], color=color, lw=1.6, label=strategy)
        ax.plot(band.index[-1:], band["median"].iloc[-1:], color=color, marker=marker, ls="")
        ax.fill_between(band.index, band["low"], band["high"], color=color, alpha=0.18, lw=0)
        drawn.append(strategy)
    ax.set_yscale("log")
    return drawn


def finish(fig, name: str, title: str, caption: str, drawn: list[str], out: Path, formats) -> Made:
    """Title, layout and the strategies' legend; the figure saved."""
    fig.suptitle(title, x=0.01, ha="left")
    fig.tight_layout()
    strategy_legend(fig, drawn, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return Made(name, title, caption, save(fig, out, name, formats))


def loss_curves(steps: pd.DataFrame, problem: str, out: Path, formats: list[str]) -> Made | Skipped:
    name, title = f"train_loss_{problem}", f"{problem}: training loss against step and against wall time"
    data = steps[steps["loss"].notna()] if "loss" in steps else steps.iloc[:0]
    if data.empty:
        return Skipped(name, title, "no step recorded a loss")
    plt, _ = libraries()
    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4))
    drawn = draw_lines(by_step, data, "step", "loss")
    draw_lines(by_time, data, "elapsed", "loss")
    by_step.set_xlabel("Adam step")
    by_time.set_xlabel("training wall time [s] (steps only)")
    by_step.set_ylabel("training loss (physics + initial condition)\n(lower is better)")
    caption = (
        "The loss each step's gradient was taken at (before its update): median over seeds, band from "
        "the lowest to the highest seed. Right: against the cumulative wall time of the steps (gradient "
        "and update; test evaluations and checkpoints excluded). Exact strategies draw one curve."
    )
    return finish(fig, name, title, caption, drawn, out, formats)


def error_curves(steps: pd.DataFrame, problem: str, target: float, out: Path, formats: list[str]):
    name, title = f"train_test_error_{problem}", f"{problem}: test error against wall time"
    data = steps[steps["test_error"].notna()] if "test_error" in steps else steps.iloc[:0]
    if data.empty:
        return Skipped(name, title, "no test error was measured")
    plt, _ = libraries()
    fig, (by_time, by_step) = plt.subplots(1, 2, figsize=(11, 4))
    drawn = draw_lines(by_time, data, "elapsed_before", "test_error")
    draw_lines(by_step, data, "step", "test_error")
    for ax in (by_time, by_step):
        ax.axhline(target, color="#444444", lw=0.9, ls=":")
    by_time.set_xlabel("training wall time [s] (steps only)")
    by_step.set_xlabel("Adam step")
    by_time.set_ylabel("test error, RMS from the ODE reference\n(lower is better)")
    caption = (
        "The model's root mean square distance from the ODE reference on the test grid, every "
        f"--eval-every steps; the dotted line is the target error {target:g} of the final table's "
        "'time to target'. Median over seeds, band the range; against wall time the curves end where "
        "the seed that trained fastest ended."
    )
    return finish(fig, name, title, caption, drawn, out, formats)


def drift_curves(drift: pd.DataFrame, problem: str, out: Path, formats: list[str]) -> Made | Skipped:
    name, title = f"train_drift_{problem}", f"{problem}: parameter drift from an exact strategy"
    data = drift[drift["problem"] == problem]
    if data.empty:
        return Skipped(
            name,
            title,
            "no parameter trajectories of a reference and another strategy (a run folder is needed)",
        )
    plt, _ = libraries()
    fig, ax = plt.subplots(figsize=(7, 4))
    floor = 1e-16
    data = data.assign(drift=data["drift"].clip(lower=floor))
    drawn = draw_lines(ax, data, "step", "drift")
    ax.axhline(1e-6, color="#D00000", lw=0.9, ls=":")
    ax.set_xlabel("Adam step")
    reference = data["reference"].iloc[0]
    ax.set_ylabel(f"|theta - theta_{reference}| / |theta_{reference}|\n(relative, same seed)")
    caption = (
        f"How far each strategy's parameters are from {reference}'s after the same number of steps from "
        "the same start: strategies with exact gradients stay at rounding level (the red dotted line is "
        "the 1e-6 the agreement test allows); a wrong gradient drifts away. Distances of exactly 0 are "
        f"drawn at {floor:.0e}."
    )
    return finish(fig, name, title, caption, drawn, out, formats)


def make_training_figures(rows: pd.DataFrame, out: Path, formats: list[str]) -> list[Made | Skipped]:
    steps = step_table(rows)
    drift = drift_table(rows)
    target = target_error(rows)
    made: list[Made | Skipped] = []
    for problem in dict.fromkeys(steps["problem"]):
        subset = steps[steps["problem"] == problem]
        made.append(loss_curves(subset, problem, out, formats))
        made.append(error_curves(subset, problem, target, out, formats))
        made.append(drift_curves(drift, problem, out, formats))
    return made
