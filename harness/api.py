"""``deqbench.run``: the CLI's ``deqbench run``, from Python, returning a pandas DataFrame."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported by the run itself: `import deqbench` stays light
    import pandas as pd


def run(
    strategies: str | Sequence[str] = "all",
    problems: str | Sequence[str] = "all",
    queries: str | Sequence[str] = "all",
    *,
    size: str | None = None,
    quick: bool = False,
    device: str = "cpu",
    dtype: str = "float64",
    seed: int = 0,
    warmup: int | None = None,
    repeats: int | None = None,
    f_tol: float | None = None,
    b_tol: float | None = None,
    f_max_iter: int = 500,
    b_max_iter: int = 500,
    timeout: float | None = None,
    tol: float | None = None,
    threads: int | None = None,
    max_memory: str | int | None = None,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Run the strategy x problem x query matrix; one tidy row per (cell, metric).

    Arguments are those of ``deqbench run`` (names, comma lists, ``"all"`` or
    ``"path/to/file.py:Class"`` for strategies and problems; ``size`` a preset and/or
    ``"knob=value"`` overrides). Each cell runs in a process of its own. With ``out`` the
    run folder is kept (and can be finished later with ``resume=out``); without it the rows
    are only returned. Bad input raises :class:`deqbench.harness.runner.BadInput` (a
    ValueError) before anything is written.

    >>> rows = deqbench.run("analytic,unrolled", "tanh", "pinn_grad", quick=True)
    >>> rows[rows.metric == "relative_error"]
    """
    from deqbench.harness import runner

    if resume is not None:
        settings, folder, record = runner.resume_settings(resume)
        with _reporter(progress) as reporter:
            return runner.execute(settings, folder, record, reporter=reporter)
    settings = runner.make_settings(
        strategies,
        problems,
        queries,
        size=size,
        quick=quick,
        device=device,
        dtype=dtype,
        seed=seed,
        warmup=warmup,
        repeats=repeats,
        f_tol=f_tol,
        b_tol=b_tol,
        f_max_iter=f_max_iter,
        b_max_iter=b_max_iter,
        timeout=timeout,
        tol=tol,
        threads=threads,
        max_memory=max_memory,
    )
    keep = out is not None
    path = runner.prepare_out(out) if keep else Path(tempfile.mkdtemp(prefix="deqbench-run-")) / "run"
    try:
        planned = runner.checked_plan(settings)
        folder, record = runner.create_run(settings, path, [p.cell for p in planned])
        with _reporter(progress) as reporter:
            return runner.execute(settings, folder, record, reporter=reporter)
    finally:
        if not keep:
            shutil.rmtree(path.parent, ignore_errors=True)


def _reporter(progress: bool):
    """A progress bar on stderr, or nothing (as a context manager either way)."""
    if not progress:
        return contextlib.nullcontext(None)
    from deqbench.harness.cli import ProgressReporter

    return ProgressReporter()
