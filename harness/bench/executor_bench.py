"""The Dask executor against the local one, side by side in one process:
``python -m deqbench.harness.bench.executor_bench [--workers 2] [--threads 1] [--strategies ...]``.

Runs the same matrix (by default the quick matrix, ``--strategy all --quick``) three
times with a warm oracle cache and one torch thread per cell: with the local executor, on
a LocalCluster of one worker, and on one of ``--workers`` workers. It prints each wall
time, the fixed costs (starting a LocalCluster; the worker server each Dask worker starts
on its first cell, which the local run reuses from this process), the wall-time ratio of
the parallel cluster to the local run, and the per-cell overhead Dask adds: with one
worker the cells run one after another as they do locally, so
``(one-worker wall - fixed costs - local wall) / cells`` is what each cell pays for being a
task.
"""

from __future__ import annotations

import argparse
import time

from deqbench.harness.results import rows as results
from deqbench.harness.run.api import run
from deqbench.harness.run.dask_executor import DaskExecutor
from deqbench.harness.worker.server import WorkerServer


def timed_run(**options) -> tuple[float, int]:
    start = time.perf_counter()
    rows = run(**options)
    return time.perf_counter() - start, len(results.cell_statuses(rows))


def server_start_seconds() -> float:
    """What each Dask worker pays once: starting its worker server (importing torch)."""
    start = time.perf_counter()
    WorkerServer().close()
    return time.perf_counter() - start


def cluster_start_seconds(workers: int) -> float:
    start = time.perf_counter()
    with DaskExecutor(workers=workers).client():
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--strategies", default="all")
    parser.add_argument("--problems", default="all")
    parser.add_argument("--queries", default="all")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per cell (default 1)")
    args = parser.parse_args(argv)
    matrix = {"strategies": args.strategies, "problems": args.problems, "queries": args.queries}
    matrix.update(quick=True, threads=args.threads)
    timed_run(**matrix)  # fills the oracle cache, so every run below finds it warm
    local, cells = timed_run(**matrix)
    one_worker, _ = timed_run(**matrix, executor="dask", workers=1)
    parallel, _ = timed_run(**matrix, executor="dask", workers=args.workers)
    start_one, start = cluster_start_seconds(1), cluster_start_seconds(args.workers)
    server = server_start_seconds()
    print(f"cells: {cells}")
    print(f"local executor:               {local:8.1f} s")
    print(f"dask, 1 worker:               {one_worker:8.1f} s")
    print(f"dask, {args.workers} workers:              {parallel:8.1f} s")
    print(f"LocalCluster start, 1 worker: {start_one:8.1f} s")
    print(f"LocalCluster start, {args.workers} workers:{start:8.1f} s")
    print(f"wall time dask {args.workers} workers / local: {parallel / local:.2f}")
    print(f"worker server start, once per Dask worker: {server:.1f} s")
    overhead = (one_worker - start_one - server - local) / cells
    print(f"per-cell overhead of dask:    {overhead * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
