"""The run loop: new runs and resumes, and every planned cell written as it finishes.

An executor (:mod:`.executors`) runs the cells, each as :mod:`.cell_run` says (measured
and judged in worker processes of their own); this module writes each cell's rows to the
run folder at once, under its lock (:mod:`deqbench.harness.results.run_folder`): a killed
run loses only the cells in flight, and ``--resume`` finishes the rest. The folder's own
life cycle (where it goes, run.json, what a resume imports) is
:mod:`deqbench.harness.results.life_cycle`'s, shared with training.

Checks of user input happen before anything is written (:mod:`.settings`, the folder, the
plan, users' problems), and raise :class:`~deqbench.harness.options.BadInput` with one line.
"""

from __future__ import annotations

import errno
import os
from typing import Any

import pandas as pd

from deqbench.harness.options import BadInput
from deqbench.harness.oracle.cache import CacheDirectoryError, check_cache_dir, default_cache_dir
from deqbench.harness.references import is_file_reference, resolve_class
from deqbench.harness.results import rows as results
from deqbench.harness.results.life_cycle import (
    RunAborted,
    check_resume_imports,
    create_run,
    prepare_out,
)
from deqbench.harness.results.run_folder import RUN_FILE, FolderInUse, RunFolder, UnreadableRun
from deqbench.harness.run.cell_run import CellContext, machine_defaults
from deqbench.harness.run.executors import Executor, LocalExecutor
from deqbench.harness.run.matrix import PlannedCell, plan
from deqbench.harness.run.progress import Reporter, SilentReporter
from deqbench.harness.run.settings import RunSettings
from deqbench.harness.worker.cell import CellSpec, ProblemCheck
from deqbench.harness.worker.server import deadline_after, run_job
from deqbench.strategies.base import STRATEGIES


def new_run(settings: RunSettings, out: str | os.PathLike | None) -> tuple[RunFolder, dict]:
    """A new run's folder, made once its settings, folder, plan and users' problems all
    check out."""
    path = prepare_out(out)
    check_oracle_cache()
    planned = checked_plan(settings)
    check_user_problems(planned, settings)
    return create_run(settings, path, [p.cell.id for p in planned])


def check_user_problems(planned: list[PlannedCell], settings: RunSettings) -> None:
    """BadInput when a problem from a user's file cannot be built, or its layer raises under
    a framework it declares and the run uses (each instance tried once, in a worker under
    --timeout; one stopped there is left to its cells). Shipped problems are tested already."""
    needs: dict[tuple, tuple[CellSpec, set[str]]] = {}
    for cell in planned:
        if is_file_reference(cell.spec.problem):
            key = (cell.spec.problem, tuple(sorted(cell.spec.overrides.items())))
            backends = needs.setdefault(key, (cell.spec, set(settings.oracle_frameworks)))[1]
            backends.add(resolve_class(cell.spec.strategy, "strategy").backend)
    for spec, backends in needs.values():
        outcome = run_job(ProblemCheck(spec, tuple(sorted(backends))), deadline_after(settings.timeout))
        if isinstance(outcome, str) and outcome:
            size = ",".join(f"{k}={v}" for k, v in spec.overrides.items()) or spec.preset
            raise BadInput(f"problem {spec.problem} ({size}): {outcome}")


def resume_settings(
    path: str | os.PathLike, trust: bool = False, notify=lambda line: None
) -> tuple[RunSettings, RunFolder, dict[str, Any]]:
    """A run folder's settings, checked again (a strategy file may have moved since).

    The strategy and problem files that run.json names are the ones the resumed run runs;
    each is named to ``notify`` before any is imported, and one outside the run folder or
    changed since the run started is imported only with ``trust`` (UntrustedFiles otherwise).
    """
    folder = RunFolder(path)
    if not folder.exists():
        raise BadInput(f"--resume {path}: no {RUN_FILE} there; accepted: a folder made by deqbench run")
    try:
        run = folder.load()
    except UnreadableRun as error:
        raise BadInput(f"--resume {path}: {error}") from None
    check_resume_imports(folder, run, trust, notify)
    check_oracle_cache()
    try:
        settings = RunSettings.from_dict(run["settings"])
    except BadInput as error:
        raise BadInput(f"--resume {path}: {RUN_FILE} settings: {error}") from None
    return settings, folder, run


def check_oracle_cache() -> None:
    """BadInput when the oracle cache's folder ($DEQBENCH_CACHE_DIR) is a file: every answer
    would be recomputed, silently."""
    try:
        check_cache_dir(default_cache_dir())
    except CacheDirectoryError as error:
        raise BadInput(str(error)) from None


def checked_plan(settings: RunSettings) -> list[PlannedCell]:
    """:func:`plan`, with a class that cannot even be loaded reported as bad input."""
    try:
        return plan(settings)
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001 - a user's class failing to load
        raise BadInput(f"cannot build the matrix: {type(error).__name__}: {error}") from None


# ------------------------------------------------------------------- execution
def execute(
    settings: RunSettings,
    folder: RunFolder,
    run: dict[str, Any],
    reporter: Reporter | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Run every cell not yet in the folder, writing each as it finishes; all rows after.

    The executor (:mod:`.executors`: this machine, or a Dask cluster) runs the cells; this
    process writes each one as it arrives, under the folder's lock. Raises BadInput when
    another process is writing the folder, RunAborted when a finished cell cannot be written
    (a full disk): the cells written so far are kept for --resume.
    """
    reporter = reporter or SilentReporter()
    executor = executor or LocalExecutor()
    planned_cells = checked_plan(settings)
    try:
        with folder.lock():
            folder.make_folders()
            folder.remove_partial_files()
            done = folder.finished()
            todo = [p for p in planned_cells if p.cell.id not in done]
            parallel = getattr(executor, "parallel_cells", 0)
            reporter.plan(plan_line(planned_cells, todo, parallel))
            context = CellContext(
                settings,
                run["run_id"],
                {**results.run_metadata(), **machine_defaults(settings), "parallel_cells": parallel},
                settings.memory_cap(),
            )
            finished = executor.run_cells(
                todo, context, folder, lambda p, i: reporter.started(p, i, len(todo))
            )
            for index, (planned, rows) in enumerate(finished):
                write_cell(folder, planned, rows, len(done) + index)
                reporter.finished(planned, rows["status"].iloc[0])
    except FolderInUse as error:
        raise BadInput(str(error)) from None
    return folder.read()


#: Rough seconds of one quick-size cell on one CPU, by the strategy's backend: the mean
#: cell_wall_time of `make run` on a quiet 2-core machine (torch 0.6 s, JAX 1.8 s, the JAX
#: cells compiling their query), rounded up; the plan's estimate only, which the progress
#: line then corrects from the run's own pace.
SECONDS_PER_CELL = {"torch": 0.8, "jax": 2.2}


def plan_line(planned: list[PlannedCell], todo: list[PlannedCell], parallel: int) -> str:
    """One line before the first cell: how many cells, of which strategies x problems x
    queries, how many are left to run, how many at once, and a rough estimate of the time.

    ``parallel``: cells at once (0: the executor does not say, a cluster)."""
    strategies = dict.fromkeys(p.cell.strategy for p in planned)
    problems = dict.fromkeys((p.cell.problem, p.cell.variant) for p in planned)
    queries = dict.fromkeys(p.cell.query for p in planned)
    shape = " x ".join(
        counted(len(names), *nouns)
        for names, nouns in (
            (strategies, ("strategy", "strategies")),
            (problems, ("problem", "problems")),
            (queries, ("query", "queries")),
        )
    )
    refused = sum(not p.cell.supported for p in todo)
    parts = [f"plan: {len(planned)} cells ({shape})"]
    if len(todo) != len(planned):
        parts.append(f"{len(todo)} left to run")
    if refused:
        parts.append(f"{refused} unsupported by their strategy")
    if parallel:
        parts.append(f"{parallel} at a time" if parallel > 1 else "one at a time")
        parts.append(f"estimate about {estimate_minutes(todo, parallel)} (quick-size cells)")
    return ", ".join(parts)


def counted(count: int, singular: str, plural: str) -> str:
    """1 problem, 3 strategies."""
    return f"{count} {singular if count == 1 else plural}"


def estimate_minutes(todo: list[PlannedCell], parallel: int) -> str:
    seconds = sum(
        SECONDS_PER_CELL.get(STRATEGIES.get(p.cell.strategy).backend, 1.0) for p in todo if p.cell.supported
    )
    minutes = seconds / parallel / 60
    return f"{minutes:.0f} min" if minutes >= 1 else "1 min"


def write_cell(folder: RunFolder, planned: PlannedCell, rows: pd.DataFrame, finished_before: int) -> None:
    try:
        folder.write_cell(planned.cell.id, rows)
    except OSError as error:
        reason = "no space left on device" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        raise RunAborted(
            f"cannot write cell {planned.cell.id} to {folder.path}: {reason}; the {finished_before} "
            f"cells finished before it are kept: deqbench run --resume {folder.path}"
        ) from None
