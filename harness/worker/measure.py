"""Measuring one cell in the current process: build, warm up, memory, then time.

:func:`measure` is what a worker process runs for a cell (:mod:`.server` gives it a process
of its own): it builds the cell, warms up, makes one memory pass (peak memory over the
warmed-up baseline; the answer that is checked against the oracle), one pass for the bytes
autograd saves, and ``repeats`` timed runs. It never writes results; the parent does.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import threadpoolctl
import torch

from deqbench.backends import to_numpy
from deqbench.harness.results.status import Status
from deqbench.harness.worker.cell import CellSpec, PreparedCell
from deqbench.harness.worker.memory import pin_malloc_thresholds, steady_malloc_thresholds
from deqbench.queries import UnsupportedQueryError

#: A worker's status for a cell it measured (the parent then verifies it into ok/wrong/...).
MEASURED = "measured"


@dataclass
class Measurement:
    """What came back from a worker (or what the parent knows when nothing did)."""

    status: str  # MEASURED, or the Status of a cell that could not be measured
    message: str = ""
    values: dict[str, np.ndarray] = field(default_factory=dict)  # float64, CPU
    solver_totals: dict[str, float] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)  # seconds, one per repeat
    memory_metric: str = ""  # peak_rss_bytes or cuda_peak_bytes
    peak_bytes: float = float("nan")
    saved_bytes: float = float("nan")
    threads: int = 0
    device_name: str = ""
    compile_seconds: float = float("nan")  # JAX strategies: lowering + XLA compilation
    compiled_memory: dict[str, float] = field(default_factory=dict)  # XLA memory_analysis, bytes

    @property
    def time_median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def time_iqr(self) -> float:
        if len(self.times) < 2:
            return 0.0 if self.times else float("nan")
        q1, _, q3 = statistics.quantiles(self.times, n=4, method="inclusive")
        return q3 - q1


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure(spec: CellSpec) -> Measurement:
    """Build, warm up, measure memory (and keep that answer), then time ``repeats`` runs
    (see ``timed_runs``)."""
    use_threads(spec.threads, one_cpu=on_cpu(spec.device))
    pin_malloc_thresholds()
    cell = PreparedCell.build(spec)
    reason = cell.unsupported_reason()
    if reason is not None:
        return Measurement(Status.UNSUPPORTED, reason)
    cell.warm_up()
    result, peak = cell.memory_run()
    saved = cell.saved_bytes()
    times = timed_runs(cell, spec.repeats)
    return Measurement(
        MEASURED,
        values={k: to_numpy(v) for k, v in result.values.items()},
        solver_totals={k: float(v) for k, v in result.solver_totals().items()},
        times=times,
        memory_metric=peak.metric,
        peak_bytes=float(peak.peak_bytes),
        saved_bytes=saved,
        threads=torch.get_num_threads(),
        device_name=device_name(cell.problem.device),
        compile_seconds=cell.compile_seconds,
        compiled_memory=cell.compiled_memory,
    )


def timed_runs(cell: PreparedCell, repeats: int) -> list[float]:
    """The times of ``repeats`` runs, with malloc's steady thresholds (after a warm-up run
    under them). Pinned thresholds serve the memory pass only: with them every block over
    128 KiB is a fresh mmap, faulted in and zeroed at each use, which no ordinary process
    pays and which falls unevenly on the cells (tanh m = 256: one forward solve 2.9x as
    long; ``memory.steady_malloc_thresholds``)."""
    steady_malloc_thresholds()
    cell.timed_run()
    return [cell.timed_run() for _ in range(repeats)]


def use_threads(threads: int | None, *, one_cpu: bool = True) -> None:
    """A measuring process's threads: torch's count, the BLAS libraries' (:func:`limit_blas`),
    XLA's settings and, for one thread, one CPU (:func:`keep_to_one_cpu`) unless ``one_cpu``
    is False. None leaves each library its own default."""
    if threads:
        torch.set_num_threads(threads)
        limit_blas(threads)
    if threads == 1 and one_cpu:
        keep_to_one_cpu()
    configure_xla(threads)


@contextlib.contextmanager
def threads_restored():
    """Around :func:`use_threads` in a process that lives on (training from Python): torch's
    thread count and the CPUs the process may use are given back on the way out."""
    threads = torch.get_num_threads()
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if cpus is not None:
            os.sched_setaffinity(0, cpus)


def limit_blas(threads: int) -> None:
    """The BLAS and LAPACK libraries outside torch on ``threads`` threads: the ones loaded
    (threadpoolctl) and the ones loaded later (OpenBLAS reads its variable as it loads).

    jaxlib's LAPACK kernels (the LU of optimistix's dense solve) call scipy's OpenBLAS,
    whose thread pool ignores torch's and XLA's settings: a "one thread" cell had two, and
    on one CPU (:func:`keep_to_one_cpu`) its threads spin-wait on each other, which made
    optimistix-implicit's grad at m = 256 take 10.4 s against 0.12 s.
    """
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
    threadpoolctl.threadpool_limits(threads, user_api="blas")


def on_cpu(device: str) -> bool:
    """Whether a cell computes on the CPU: on a GPU the driver's and XLA's host threads that
    launch the kernels keep every CPU (one thread still means one torch and BLAS thread)."""
    return torch.device(device).type == "cpu"


def keep_to_one_cpu() -> None:
    """Restrict this process to the CPU it runs on now (where the OS lets it choose).

    XLA's CPU runtime runs a large op on a thread pool of its own, sized by the CPUs the
    process may use, which ``--xla_cpu_multi_thread_eigen=false`` does not reach: a jitted
    loop of ``tanh(c @ W)`` (batch 128, float64) took 127 us of wall and 235 us of CPU time
    a step at m = 256 with the flag alone, 1.8 against 3.5 ms at m = 1024, so a JAX cell
    measured with "one thread" had two cores. On one CPU the same loop takes 204 us of both.
    The current CPU, not a fixed one: separate measuring processes (Dask workers on one
    machine) then mostly keep to different CPUs.
    """
    if not hasattr(os, "sched_setaffinity"):  # not Linux: nothing to restrict with
        return
    allowed = os.sched_getaffinity(0)
    if len(allowed) > 1:
        current = current_cpu()
        os.sched_setaffinity(0, {current if current in allowed else min(allowed)})


def current_cpu() -> int | None:
    """The CPU this process last ran on (field 39 of /proc/self/stat), None if unreadable."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()  # after the command name, field 3 on
        return int(fields[39 - 3])
    except (OSError, IndexError, ValueError):
        return None


def configure_xla(threads: int | None) -> None:
    """XLA settings for a worker, before XLA's backend starts (the worker is a fresh fork of
    a server that imported JAX but never computed with it: XLA reads these at its backend's
    start): no GPU preallocation, so that peak memory is what a cell uses; and Eigen's
    multi-threading off when ``--threads 1`` asks for one thread.
    That flag alone does not keep XLA's CPU code on one thread (its runtime's own pool
    ignores it): :func:`keep_to_one_cpu` does. XLA has no flag for other counts: they are
    recorded, and XLA uses its own thread pool."""
    if jax_backend_started():
        return
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()


def jax_backend_started() -> bool:
    """Whether this process has started an XLA backend (after which XLA's settings hold)."""
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge  # no public way to ask without starting one

    return xla_bridge.backends_are_initialized()


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or torch's CPU allocator giving up
    (a plain RuntimeError: "DefaultCPUAllocator: can't allocate memory")."""
    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), MemoryError) if t is not None)
    text = str(error)
    return isinstance(error, oom_types) or "can't allocate memory" in text or "RESOURCE_EXHAUSTED" in text


def failure_status(error: BaseException) -> Status:
    return Status.OOM if is_out_of_memory(error) else Status.ERROR


@dataclass(frozen=True)
class MeasureJob:
    """A worker job: measure one cell; every exception becomes a status and one line."""

    spec: CellSpec

    def __call__(self) -> Measurement:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence is reported as a status instead
                return measure(self.spec)
        except UnsupportedQueryError as error:  # a size override made the query impossible
            return Measurement(Status.UNSUPPORTED, str(error))
        except Exception as error:  # noqa: BLE001 - anything the cell raises is its result
            traceback.print_exc()
            return Measurement(failure_status(error), one_line(error))
