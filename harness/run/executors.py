"""Executors: who runs a run's cells. This machine, one cell after another, or a Dask cluster.

An executor's ``run_cells(todo, context, folder, on_start)`` yields ``(planned, rows)`` as
each cell finishes, in whatever order they finish; the run loop (:mod:`.runner`) writes
each one at once. Every cell runs as :func:`~deqbench.harness.run.cell_run.run_cell` says, in
worker processes of its own, wherever the executor puts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import pandas as pd

from deqbench.harness.options import BadInput
from deqbench.harness.results.run_folder import RunFolder
from deqbench.harness.run.cell_run import CellContext, remove_if_empty, run_cell
from deqbench.harness.run.matrix import PlannedCell

OnStart = Callable[[PlannedCell, int], None]

#: The executors `deqbench run --executor` accepts.
EXECUTORS = ("local", "dask")


class Executor(Protocol):
    def run_cells(
        self, todo: list[PlannedCell], context: CellContext, folder: RunFolder, on_start: OnStart
    ) -> Iterator[tuple[PlannedCell, pd.DataFrame]]: ...


class LocalExecutor:
    """Every cell on this machine, one after another (so timings never compete)."""

    def run_cells(self, todo, context, folder, on_start):
        for index, planned in enumerate(todo):
            on_start(planned, index)
            log_path = folder.log_path(planned.cell.id)
            rows = run_cell(planned, context, str(log_path))
            remove_if_empty(log_path)
            yield planned, rows


def make_executor(name: str = "local", scheduler: str | None = None, workers: int | None = None) -> Executor:
    """The executor by name, checked (BadInput with one line otherwise)."""
    if name not in EXECUTORS:
        raise BadInput(f"unknown --executor {name!r}; accepted: {', '.join(EXECUTORS)}")
    if name == "local":
        if scheduler is not None or workers is not None:
            raise BadInput("--scheduler and --workers need --executor dask")
        return LocalExecutor()
    from deqbench.harness.run.dask_executor import DaskExecutor

    return DaskExecutor.checked(scheduler, workers)
