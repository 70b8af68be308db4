"""``deqbench.run``: the CLI's ``deqbench run``, from Python, returning a pandas DataFrame."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas is imported by the run itself: `import deqbench` stays light
    import pandas as pd


def run(
    strategies: str | Sequence[str] = "all",
    problems: str | Sequence[str] = "all",
    queries: str | Sequence[str] = "all",
    *,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    trust: bool = False,
    progress: bool = False,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    jobs: int | str | None = None,
    **settings: Any,
) -> pd.DataFrame:
    """Run the strategy x problem x query matrix; one tidy row per (cell, metric).

    ``settings`` are the options of ``deqbench run`` by their field names in
    :class:`deqbench.harness.run.settings.RunSettings` (``size``, ``quick``, ``device``,
    ``dtype``, ``seed``, ``warmup``, ``repeats``, ``f_solver``, ``b_solver``, ``f_tol``,
    ``b_tol``, ``f_max_iter``, ``b_max_iter``, ``tol``, ``timeout``, ``threads``,
    ``max_memory``), with the same meaning and checks. Strategies and problems are names,
    comma lists, ``"all"`` or ``"path/to/file.py:Class"``. Each cell runs in a process of
    its own. With ``out`` the run folder is kept (and can be finished later with
    ``resume=out``; files it imports from outside the folder, or changed since, need
    ``trust=True``); without it the rows are only returned. Bad input raises
    :class:`deqbench.harness.options.BadInput` (a ValueError) before anything is written.
    ``executor="dask"`` runs the cells on a dask.distributed cluster (``scheduler`` its
    address, or a LocalCluster of ``workers`` processes); ``resume`` works with either.
    ``jobs``: cells at once on this machine (``deqbench run --jobs``), each on a CPU of its own.

    >>> rows = deqbench.run("analytic,unrolled", "tanh", "pinn_grad", quick=True)
    >>> rows[rows.metric == "relative_error"]
    """
    from deqbench.harness.options import BadInput
    from deqbench.harness.results import life_cycle
    from deqbench.harness.run import runner
    from deqbench.harness.run.executors import check_executor, make_executor
    from deqbench.harness.run.progress import reporter
    from deqbench.harness.run.settings import make_settings

    cell_executor = make_executor(executor, scheduler, workers, jobs)
    if resume is not None:
        if settings:
            raise BadInput(f"resume takes its settings from run.json; drop {', '.join(sorted(settings))}")
        run_settings, folder, record = runner.resume_settings(resume, trust, life_cycle.notify_on_stderr)
        check_executor(cell_executor, run_settings)
        with reporter(progress) as report:
            return runner.execute(run_settings, folder, record, reporter=report, executor=cell_executor)
    run_settings = make_settings(strategies=strategies, problems=problems, queries=queries, **settings)
    check_executor(cell_executor, run_settings)
    keep = out is not None
    scratch = None if keep else Path(tempfile.mkdtemp(prefix="deqbench-run-"))
    try:
        folder, record = runner.new_run(run_settings, out if keep else scratch / "run")
        with reporter(progress) as report:
            return runner.execute(run_settings, folder, record, reporter=report, executor=cell_executor)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
