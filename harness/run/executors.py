"""Executors: who runs a run's cells. This machine (one cell after another, or ``--jobs N``
side by side), or a Dask cluster.

An executor's ``run_cells(todo, context, folder, on_start)`` yields ``(planned, rows)`` as
each cell finishes, in whatever order they finish; the run loop (:mod:`.runner`) writes
each one at once. Every cell runs as :func:`~deqbench.harness.run.cell_run.run_cell` says, in
worker processes of its own, wherever the executor puts it. ``parallel_cells`` says how many
cells run at once (every row records it): above 1, cells share the machine's memory
bandwidth and caches, so their times are those of a loaded machine, not of one alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol

import pandas as pd

from deqbench.harness.options import BadInput
from deqbench.harness.results.run_folder import RunFolder
from deqbench.harness.run.cell_run import CellContext, remove_if_empty, run_cell
from deqbench.harness.run.matrix import PlannedCell
from deqbench.harness.worker.server import Slot, use_slot

OnStart = Callable[[PlannedCell, int], None]

#: The executors `deqbench run --executor` accepts.
EXECUTORS = ("local", "dask")


class Executor(Protocol):
    def run_cells(
        self, todo: list[PlannedCell], context: CellContext, folder: RunFolder, on_start: OnStart
    ) -> Iterator[tuple[PlannedCell, pd.DataFrame]]: ...


def run_one(planned: PlannedCell, context: CellContext, folder: RunFolder) -> pd.DataFrame:
    """One cell's rows, its worker processes' output in its log file (dropped if empty)."""
    log_path = folder.log_path(planned.cell.id)
    rows = run_cell(planned, context, str(log_path))
    remove_if_empty(log_path)
    return rows


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def parse_jobs(value: int | str | None) -> int:
    """--jobs: a number of cells at once, 1 to the CPUs this process may use, or 'auto' (all
    of them); BadInput with one line otherwise."""
    cpus = len(usable_cpus())
    accepted = f"accepted: 1 to {cpus} (the CPUs this process may use), or auto"
    if value is None:
        return 1
    if str(value).strip().lower() == "auto":
        return cpus
    try:
        jobs = int(str(value).strip())
    except ValueError:
        raise BadInput(f"--jobs {value!r} is not a number; {accepted}") from None
    if not 1 <= jobs <= cpus:
        raise BadInput(f"--jobs {jobs}: {accepted}")
    return jobs


class LocalExecutor:
    """The cells on this machine: one after another (``jobs`` 1: timings never compete), or
    ``jobs`` at once, each in worker processes kept to a CPU of their own (as --threads 1
    keeps one), from a thread of this process that waits on them."""

    def __init__(self, jobs: int = 1):
        self.jobs = jobs

    @property
    def parallel_cells(self) -> int:
        return self.jobs

    def check(self, settings) -> None:
        """BadInput when the run's settings do not go with these jobs (before anything is
        written): cells side by side each get one CPU, so --threads above 1 would only
        compete for it."""
        if self.jobs > 1 and settings.threads not in (None, 1):
            raise BadInput(
                f"--jobs {self.jobs} runs each cell on one CPU of its own; drop --threads "
                f"{settings.threads}, or use --jobs 1"
            )

    def run_cells(self, todo, context, folder, on_start):
        self.check(context.settings)
        if self.jobs == 1:
            for index, planned in enumerate(todo):
                on_start(planned, index)
                yield planned, run_one(planned, context, folder)
            return
        yield from self.run_side_by_side(todo, context, folder, on_start)

    def run_side_by_side(self, todo, context, folder, on_start):
        """The cells ``jobs`` at a time, yielded as they finish. An interrupted run (Ctrl-C,
        or the consumer gone) stops every slot: the cells in flight are killed, not awaited."""
        slots = [Slot(cpus=[cpu]) for cpu in usable_cpus()[: self.jobs]]
        free = list(slots)

        def in_slot(slot: Slot, planned: PlannedCell, index: int) -> pd.DataFrame:
            use_slot(slot)  # the pool's thread runs this cell in this slot's server
            try:
                on_start(planned, index)
                return run_one(planned, context, folder)
            finally:
                use_slot(None)

        pending = list(enumerate(todo))[::-1]
        running: dict[Future, tuple[Slot, PlannedCell]] = {}
        pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="deqbench-cell")
        try:
            while pending or running:
                while pending and free:
                    index, planned = pending.pop()
                    slot = free.pop()
                    running[pool.submit(in_slot, slot, planned, index)] = (slot, planned)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    slot, planned = running.pop(future)
                    free.append(slot)
                    yield planned, future.result()
        finally:
            if running:
                for slot in slots:
                    slot.stop()
            pool.shutdown(wait=True, cancel_futures=True)


def check_executor(executor: Executor, settings) -> None:
    """The executor's own check of the run's settings, where it has one (BadInput): run and
    resume both ask it before anything is written."""
    check = getattr(executor, "check", None)
    if check is not None:
        check(settings)


def make_executor(
    name: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    jobs: int | str | None = None,
) -> Executor:
    """The executor by name, checked (BadInput with one line otherwise)."""
    if name not in EXECUTORS:
        raise BadInput(f"unknown --executor {name!r}; accepted: {', '.join(EXECUTORS)}")
    if name == "local":
        if scheduler is not None or workers is not None:
            raise BadInput("--scheduler and --workers need --executor dask")
        return LocalExecutor(parse_jobs(jobs))
    if jobs is not None:
        raise BadInput("--jobs sets the cells at once on this machine; with --executor dask use --workers")
    from deqbench.harness.run.dask_executor import DaskExecutor

    return DaskExecutor.checked(scheduler, workers)
