"""The tables of a training run (``deqbench train``): per-step rows, the drift of each
strategy's parameters from an exact strategy's, and the final table's numbers.

Shared by the report's documents (:mod:`deqbench.harness.train.report`) and figures
(:mod:`deqbench.harness.train.figures`). Nothing here imports matplotlib. The input is the
tidy rows of one or more training folders (or their exports): one row per (cell, step, metric).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch

from deqbench.harness.report.figures import order_strategies
from deqbench.harness.results.run_folder import RunFolder, UnreadableRun
from deqbench.harness.train.settings import TrainSettings

#: The strategy the others' parameter drift is measured from, when it trained.
DRIFT_REFERENCE = "analytic"
DEFAULT_TARGET = TrainSettings.__dataclass_fields__["target_error"].default
CELL_KEY = ["source", "cell", "strategy", "problem", "seed"]


def is_training(rows: pd.DataFrame) -> bool:
    return "step" in rows.columns and bool((rows["query"] == "train").all())


def step_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, step): every metric a column, and ``elapsed``, the wall time of the
    cell's steps so far (its training time at the end of that step; evaluation excluded)."""
    rows = rows if "source" in rows else rows.assign(source="")
    wide = rows.pivot_table(index=[*CELL_KEY, "step"], columns="metric", values="value", aggfunc="first")
    wide = wide.reset_index().sort_values([*CELL_KEY, "step"])
    if "step_time" not in wide:
        wide["step_time"] = math.nan
    wide["elapsed"] = wide.groupby(CELL_KEY)["step_time"].transform(lambda s: s.fillna(0).cumsum())
    # the wall time *at the start* of a step: a test error at step k is of the parameters
    # reached after k steps, i.e. after the time of the steps before it
    wide["elapsed_before"] = wide["elapsed"] - wide["step_time"].fillna(0)
    return wide.reset_index(drop=True)


def target_error(rows: pd.DataFrame) -> float:
    """The --target-error of the runs (their run.json), the default where unreadable."""
    targets = set()
    for source in dict.fromkeys(rows.get("source", pd.Series(dtype=str))):
        try:
            targets.add(RunFolder(source).load()["settings"]["target_error"])
        except (UnreadableRun, KeyError, OSError, TypeError):
            continue
    return min(targets) if targets else DEFAULT_TARGET


# ------------------------------------------------------------------ drift
def flat(theta: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().double().flatten() for _, t in sorted(theta.items())])


def trajectories(rows: pd.DataFrame) -> dict[tuple[str, str], dict]:
    """(source, cell) -> the cell's parameter trajectory, for the folders that have one."""
    from deqbench.harness.train.loop import load_trajectory

    found = {}
    for source, cell in rows[["source", "cell"]].drop_duplicates().itertuples(index=False):
        if Path(source).is_dir():
            trajectory = load_trajectory(RunFolder(source), cell)
            if trajectory is not None:
                found[(source, cell)] = trajectory
    return found


def drift_reference(cells: pd.DataFrame) -> str | None:
    """analytic if it trained; else the first strategy claiming exactness (not the MLP)."""
    names = order_strategies(cells["strategy"])
    if DRIFT_REFERENCE in names:
        return DRIFT_REFERENCE
    exact = cells[cells["expected_exact"] & (cells["backend"] != "") & (cells["f_solver"] != "")]
    return next((n for n in names if n in set(exact["strategy"])), None)


def drift_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Relative distance ``|theta_s - theta_ref| / |theta_ref|`` of every DEQ strategy's
    parameters from the reference strategy's, per problem, seed and evaluated step."""
    rows = rows if "source" in rows else rows.assign(source="")
    paths = trajectories(rows)
    cells = rows.drop_duplicates(["source", "cell"])
    records = []
    for (source, problem, seed), group in cells.groupby(["source", "problem", "seed"]):
        reference = drift_reference(group)
        ref_cell = group[group["strategy"] == reference]
        if reference is None or ref_cell.empty or (source, ref_cell["cell"].iloc[0]) not in paths:
            continue
        ref = paths[(source, ref_cell["cell"].iloc[0])]
        ref_at = dict(zip(ref["steps"], ref["theta"], strict=True))
        for strategy, cell in group[["strategy", "cell"]].itertuples(index=False):
            if strategy == reference or (source, cell) not in paths:
                continue
            theirs = paths[(source, cell)]
            for step, theta in zip(theirs["steps"], theirs["theta"], strict=True):
                if step in ref_at and set(theta) == set(ref_at[step]):
                    a, b = flat(ref_at[step]), flat(theta)
                    drift = float((b - a).norm() / a.norm()) if a.norm() > 0 else math.nan
                    records.append((source, problem, seed, strategy, reference, step, drift))
    columns = ["source", "problem", "seed", "strategy", "reference", "step", "drift"]
    return pd.DataFrame.from_records(records, columns=columns)


# ------------------------------------------------------------ final table
def time_to_target(steps: pd.DataFrame, target: float) -> float:
    """Training wall time (s) until the test error first reached ``target``; NaN if never."""
    evaluated = steps[steps["test_error"].notna()] if "test_error" in steps else steps.iloc[:0]
    reached = evaluated[evaluated["test_error"] <= target]
    return float(reached["elapsed_before"].iloc[0]) if len(reached) else math.nan


def cell_summary(rows: pd.DataFrame, target: float) -> pd.DataFrame:
    """One row per cell: per-step medians, the final loss and test error, time to target."""
    steps = step_table(rows)
    cells = rows.drop_duplicates(["source", "cell"]).set_index(["source", "cell"])
    memory_metric = "cuda_peak_bytes" if "cuda_peak_bytes" in steps else "peak_rss_bytes"
    records = []
    for key, group in steps.groupby(CELL_KEY, sort=False):
        source, cell = key[0], key[1]
        trained = group[group["step_time"].notna()]
        errors = group["test_error"].dropna() if "test_error" in group else pd.Series(dtype=float)
        records.append(
            {
                **dict(zip(CELL_KEY, key, strict=True)),
                "status": cells.loc[(source, cell), "status"],
                "message": cells.loc[(source, cell), "message"],
                "steps": len(trained),
                "step_time": trained["step_time"].median(),
                "memory": trained[memory_metric].median() if memory_metric in trained else math.nan,
                "forward_iterations": median_of(trained, "forward_iterations"),
                "backward_iterations": median_of(trained, "backward_iterations"),
                "final_loss": trained["loss"].iloc[-1] if len(trained) else math.nan,
                "final_error": errors.iloc[-1] if len(errors) else math.nan,
                "time_to_target": time_to_target(group, target),
                "total_time": trained["step_time"].sum(),
            }
        )
    return pd.DataFrame.from_records(records)


def median_of(frame: pd.DataFrame, column: str) -> float:
    return frame[column].median() if column in frame else math.nan


def final_table(rows: pd.DataFrame, sources=None) -> pd.DataFrame:
    """Per problem and strategy, over seeds: medians of the per-step cost, final error
    (median, and the range), time to the target error (median of the seeds that reached
    it), and the largest parameter drift from the reference at the last evaluated step."""
    rows = rows if "source" in rows else rows.assign(source="")
    if sources is not None and rows["source"].eq("").all():
        rows = rows.assign(source=str(next(iter(sources))))
    target = target_error(rows)
    summary = cell_summary(rows, target)
    drift = drift_table(rows)
    last_drift = drift.sort_values("step").groupby(["problem", "seed", "strategy"]).last().reset_index()
    references = drift.groupby("problem")["reference"].first().to_dict()
    records = []
    for (problem, strategy), group in summary.groupby(["problem", "strategy"], sort=False):
        reached = group["time_to_target"].dropna()
        drifts = last_drift[(last_drift["problem"] == problem) & (last_drift["strategy"] == strategy)]
        records.append(
            {
                "problem": problem,
                "strategy": strategy,
                "seeds": len(group),
                "stopped": int((group["status"] != "ok").sum()),
                "steps": int(group["steps"].median()),
                "step_time": group["step_time"].median(),
                "memory": group["memory"].median(),
                "forward_iterations": group["forward_iterations"].median(),
                "backward_iterations": group["backward_iterations"].median(),
                "final_loss": group["final_loss"].median(),
                "final_error": group["final_error"].median(),
                "final_error_min": group["final_error"].min(),
                "final_error_max": group["final_error"].max(),
                "time_to_target": reached.median() if len(reached) else math.nan,
                "reached": len(reached),
                "total_time": group["total_time"].median(),
                "drift": drifts["drift"].max() if len(drifts) else math.nan,
                "drift_reference": references.get(problem, ""),
                "target": target,
            }
        )
    table = pd.DataFrame.from_records(records)
    if table.empty:
        return table
    order = {name: i for i, name in enumerate(order_strategies(table["strategy"]))}
    return table.sort_values(
        ["problem", "strategy"], key=lambda c: c.map(order) if c.name == "strategy" else c
    )
