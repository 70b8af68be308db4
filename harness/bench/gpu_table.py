"""The speed table on a GPU: ``python -m deqbench.harness.bench.gpu_table`` (``make perf-gpu``).

The table of :mod:`deqbench.harness.bench.speed` (tanh, batch 128, n = 4, rho = 0.8; every
strategy asked for that claims the query exact and is installed, timed interleaved with one
plain fixed-point forward solve of the same layer, in one process, JAX compilation
excluded), on a CUDA device, in float32 and float64 (each at its dtype's tolerance: 1e-5 and
1e-10), with absolute times and peak device memory:

- the clock is read after ``torch.cuda.synchronize`` on both sides of a run (JAX
  strategies block until their result is ready), so a time is the work done, not a launch;
- torch cells: ``torch.cuda.max_memory_allocated`` over the bytes allocated before the run
  (peak statistics reset first); JAX cells: XLA's allocator ``peak_bytes_in_use`` over the
  bytes in use before the run, each in a child process of its own (XLA's peak cannot be
  reset), after a warm-up run identical to the measured one.

Without CUDA it stops with one line and exit status 2. ``--device cpu`` is a dry run of the
same code on the CPU (memory: resident set), which the tests run at a tiny size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

from deqbench.api import get_problem, get_strategy
from deqbench.harness.bench import speed
from deqbench.harness.worker.measure import on_cpu, use_threads
from deqbench.harness.worker.memory import peak_memory
from deqbench.strategies.base import STRATEGIES as REGISTRY
from deqbench.tolerances import as_dtype, solver_tol

DEFAULT_STRATEGIES = (
    "analytic,jax-analytic,unrolled,iterative-backward,jax-implicit,jax-unrolled,"
    "optimistix-implicit,optimistix-implicit-gmres,optimistix-checkpoint,jaxopt-implicit"
)
NO_CUDA = "no CUDA device here (torch.cuda.is_available() is False); --device cpu runs a dry run on the CPU"


def build_problem(m: int, dtype: torch.dtype, device: str, batch: int):
    return get_problem("tanh", "large", m=m, batch=batch, dtype=dtype, device=device)


def synchronizer(device: str):
    return (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)


def backend_of(cell: speed.Cell) -> str:
    return REGISTRY.get(cell.strategy).backend if cell.strategy else "torch"


def cell_peak_bytes(cell: speed.Cell, device: str, synchronize) -> float:
    """One run's peak memory in this process (a warm-up run has been made)."""
    with peak_memory(device, backend_of(cell)) as meter:
        cell.run()
        synchronize()
    return float(meter.peak_bytes)


def child_peak_bytes(strategy: str, query: str, m: int, dtype: str, device: str, batch: int) -> float:
    """A JAX cell's peak in a child process of its own: XLA's peak statistic cannot be reset."""
    command = [sys.executable, "-m", "deqbench.harness.bench.gpu_table", "--memory-of", strategy, query]
    command += ["--sizes", str(m), "--dtypes", dtype, "--device", device, "--batch", str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ.copy())
    if done.returncode != 0:
        print(f"(memory of {strategy} {query} m={m} {dtype}: child failed: {done.stderr.strip()[-300:]})")
        return float("nan")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"])


def measure(m: int, dtype: str, args) -> list[dict]:
    """The speed table's rows for one width and dtype, with the device's peak memory."""
    problem = build_problem(m, as_dtype(dtype), args.device, args.batch)
    tol = solver_tol(dtype)
    strategies = speed.registered(args.strategies.split(","))
    cells = speed.warmed_up_cells(problem, strategies, args.queries.split(","), tol)
    synchronize = synchronizer(args.device)
    for cell in cells:
        if backend_of(cell) == "jax" and args.device == "cuda":
            cell.peak_bytes = child_peak_bytes(cell.strategy, cell.query, m, dtype, args.device, args.batch)
        else:
            cell.peak_bytes = cell_peak_bytes(cell, args.device, synchronize)
    speed.time_interleaved(cells, args.repeats, synchronize)
    return [{**row, "dtype": dtype, "tol": tol} for row in speed.table_rows(m, cells)]


def memory_of(strategy: str, query: str, args) -> None:
    """The child's work: warm up one cell, measure one run's peak, print it as JSON."""
    m, dtype = int(args.sizes), args.dtypes
    problem = build_problem(m, as_dtype(dtype), args.device, args.batch)
    tol = solver_tol(dtype)
    instance = get_strategy(strategy, f_tol=tol, b_tol=tol)
    cell = speed.Cell(strategy, query, lambda: instance.run(query, problem), [])
    synchronize = synchronizer(args.device)
    cell.run()
    print(json.dumps({"peak_bytes": cell_peak_bytes(cell, args.device, synchronize)}))


#: the speed table's columns, with the dtype, without autograd's saved bytes
COLUMNS = (*speed.COLUMNS[:1], ("dtype", "dtype", "{}"), *speed.COLUMNS[1:7], speed.COLUMNS[8])


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a dry run")
    parser.add_argument(
        "-s", "--strategies", default=DEFAULT_STRATEGIES, help="names, comma-separated, or all"
    )
    parser.add_argument("-q", "--queries", default="grad,pinn_grad")
    parser.add_argument("--sizes", default="64,256,1024", help="state widths m, comma-separated")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (torch, BLAS, XLA's CPU code); 1 on cpu: one CPU"
    )
    parser.add_argument("--memory-of", nargs=2, metavar=("STRATEGY", "QUERY"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(NO_CUDA, file=sys.stderr)
        raise SystemExit(2)
    use_threads(args.threads, one_cpu=on_cpu(args.device))  # before JAX is first imported
    if args.memory_of:
        memory_of(*args.memory_of, args)
        return []
    rows = []
    for dtype in args.dtypes.split(","):
        for m in (int(size) for size in args.sizes.split(",")):
            rows += measure(m, dtype, args)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu (dry run)"
    print(f"device: {device}; tanh, batch {args.batch}, medians of {args.repeats}, tolerances of each dtype")
    speed.print_table(rows, COLUMNS)
    return rows


if __name__ == "__main__":
    main()
