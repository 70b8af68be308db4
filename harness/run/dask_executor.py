"""The Dask executor: each cell a task on a ``dask.distributed`` cluster.

``deqbench run --executor dask [--scheduler ADDRESS]`` hands every cell to the cluster at
ADDRESS, or to a LocalCluster of ``--workers`` processes when none is named. A cell keeps
what it has locally: on its Dask worker it runs in worker processes of its own
(:mod:`.server`), under ``--timeout`` (``--oracle-timeout`` for the oracles) and
``--max-memory``, and gives the same rows.

The oracle's answer is one task per problem instance and query, shared by every cell that
needs it (Dask passes its result to them), not computed once per cell. The parent writes
each cell as it arrives. A Dask worker that dies while running a task is retried once by
the scheduler (``distributed.scheduler.allowed-failures``, set to 1 on the LocalCluster
deqbench starts); a cell lost after that is recorded as ``killed`` with Dask's reason, and
the run goes on.

On a cluster of several machines, every worker needs deqbench (and torch) installed, and
the strategy and problem files a run names at the same absolute paths (a shared
filesystem); each worker's oracle cache is its own ($DEQBENCH_CACHE_DIR).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import tempfile
from pathlib import Path

from deqbench.harness.options import BadInput
from deqbench.harness.results.status import Status
from deqbench.harness.run.cell_run import CellContext, oracle_answers, run_cell, stopped_cell_rows
from deqbench.harness.run.matrix import PlannedCell
from deqbench.harness.worker.measure import one_line
from deqbench.harness.worker.server import deadline_after, worker_server

#: A worker that dies running a task: the scheduler tries the task once more, then gives up.
ALLOWED_FAILURES = 1
#: How long connecting to a --scheduler may take before it counts as unreachable.
CONNECT_TIMEOUT = "30s"


def check_scheduler(scheduler: str) -> None:
    """Connect to ``scheduler`` once, before any run folder is written (BadInput otherwise)."""
    with DaskExecutor.connect(scheduler):
        pass


def oracle_task(planned: PlannedCell, context: CellContext):
    """On a Dask worker: every oracle's answer for a cell's instance and query."""
    worker_server()
    deadline = deadline_after(context.settings.oracle_budget)
    return oracle_answers(planned, context.settings, deadline, local_memory_cap(context), None)


def cell_task(planned: PlannedCell, context: CellContext, oracle) -> tuple:
    """On a Dask worker: the cell's rows, and what its worker processes printed."""
    context = dataclasses.replace(
        context,
        metadata={**context.metadata, "host": socket.gethostname()},
        memory_cap=local_memory_cap(context),
    )
    with tempfile.TemporaryDirectory(prefix="deqbench-dask-cell-") as scratch:
        log_path = Path(scratch) / "cell.log"
        rows = run_cell(planned, context, str(log_path), oracle)
        log = log_path.read_text(errors="replace") if log_path.exists() else ""
    return rows, log


def local_memory_cap(context: CellContext) -> int | None:
    """The cap on the worker's machine: "90% of what is available" means available there."""
    return context.settings.memory_cap() if context.settings.max_memory is None else context.memory_cap


def oracle_key(planned: PlannedCell) -> tuple:
    """What determines an oracle answer: the instance (not the strategy) and the query."""
    spec = planned.spec
    return (
        spec.problem,
        spec.preset,
        tuple(sorted(spec.overrides.items())),
        spec.dtype,
        spec.seed,
        spec.query,
    )


class DaskExecutor:
    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        self.scheduler = scheduler
        self.workers = workers

    @classmethod
    def checked(cls, scheduler: str | None, workers: int | None) -> DaskExecutor:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise BadInput(
                "--executor dask needs dask.distributed: pip install 'deqbench[cluster]'"
            ) from None
        if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
            raise BadInput(f"--workers {workers}: accepted: an integer >= 1")
        if scheduler is not None and workers is not None:
            raise BadInput("--workers sizes the LocalCluster deqbench starts; with --scheduler, drop it")
        if scheduler is not None:
            check_scheduler(scheduler)
        return cls(scheduler, None if workers is None else int(workers))

    @staticmethod
    def connect(scheduler: str, timeout: str = CONNECT_TIMEOUT):
        """A client of ``scheduler``; BadInput with one line when the address is malformed
        or nothing answers there."""
        from distributed import Client

        try:
            return Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError, ValueError, TypeError) as error:
            raise BadInput(
                f"--scheduler {scheduler}: cannot connect ({one_line(error)}); accepted: the address of "
                "a running dask scheduler, e.g. tcp://host:8786"
            ) from None

    @contextlib.contextmanager
    def client(self):
        """A client of the named scheduler, or of a LocalCluster started (and stopped) here."""
        import dask
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            with self.connect(self.scheduler) as client:
                yield client
            return
        with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
            workers = self.workers or max(1, (os.cpu_count() or 2) // 2)
            with (
                LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                Client(cluster) as client,
            ):
                yield client

    def run_cells(self, todo, context, folder, on_start):
        from distributed import as_completed

        if not todo:
            return
        with self.client() as client:
            oracles: dict[tuple, object] = {}
            cells = {}  # future -> (planned, the oracle future it was given)
            for planned in todo:
                oracle = None
                if planned.cell.supported:
                    key = oracle_key(planned)
                    if key not in oracles:
                        oracles[key] = client.submit(oracle_task, planned, context, pure=False)
                    oracle = oracles[key]
                cells[client.submit(cell_task, planned, context, oracle, pure=False)] = (planned, oracle)
            finished = as_completed(cells)
            index = 0
            for future in finished:
                planned, oracle = cells.pop(future)
                if future.status == "error" and oracle is not None and oracle.status == "error":
                    # The shared oracle was lost (a worker that died took it along), not this
                    # cell: run the cell again, asking the oracle itself.
                    retry = client.submit(cell_task, planned, context, None, pure=False)
                    cells[retry] = (planned, None)
                    finished.add(retry)
                    continue
                on_start(planned, index)
                index += 1
                yield planned, self.collect(future, planned, context, folder)

    @staticmethod
    def collect(future, planned: PlannedCell, context: CellContext, folder):
        """A finished task's rows (its log written to the run folder), or a lost cell's."""
        try:
            rows, log = future.result()
        except Exception as error:  # noqa: BLE001 - KilledWorker, a lost or cancelled task
            message = f"dask lost the cell ({one_line(error)}); a worker died running it, and on its retry"
            return stopped_cell_rows(planned, context, Status.KILLED, message)
        if log:
            folder.log_path(planned.cell.id).write_text(log)
        return rows
