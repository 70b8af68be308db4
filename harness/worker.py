"""One cell, measured in a worker process of its own.

The parent (:mod:`deqbench.harness.runner`) hands a :class:`CellSpec` to a fresh worker
process and waits for its :class:`Measurement`, or for the process to die, or for the
timeout. The worker builds the problem instance, warms up, then makes one *memory pass*
(peak memory over the warmed-up baseline, the bytes autograd saves, and the answer that is
checked against the oracle) and ``repeats`` timed runs. The worker never writes results:
the parent does, so a killed worker can leave nothing half-written.

Workers are forked from a *worker server* that has already imported torch, deqbench and
the modules torch loads lazily on the first ``torch.func`` call, so a cell's process starts
in milliseconds instead of the seconds a fresh interpreter needs to import torch (see
:class:`WorkerServer`).
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import gc
import hashlib
import importlib.util
import os
import pickle
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch

from deqbench.harness.memory import peak_memory, pin_malloc_thresholds, saved_tensor_bytes
from deqbench.problems.base import PROBLEMS, Problem
from deqbench.queries import UnsupportedQueryError
from deqbench.registry import DuplicateNameError, UnknownNameError
from deqbench.strategies.base import STRATEGIES, Strategy

DTYPES = {"float64": torch.float64, "float32": torch.float32}

#: What a worker reports: "measured" (the parent then verifies it), or why it could not.
MEASURED, UNSUPPORTED, ERROR, OOM, TIMEOUT = "measured", "unsupported", "error", "oom", "timeout"


# ----------------------------------------------------------- classes by reference
class BadReference(ValueError):
    """A strategy or problem reference that names nothing usable (one-line message)."""


def is_file_reference(ref: str) -> bool:
    """``path/to/file.py:ClassName`` (as opposed to a registry name)."""
    path, sep, name = ref.rpartition(":")
    return bool(sep) and path.endswith(".py") and bool(name)


def resolve_class(ref: str, kind: str) -> type:
    """The Strategy or Problem class a reference names: a registry name or ``file.py:Class``.

    A class loaded from a file is added to its registry (it registers itself when it sets
    ``name``; adding again is a no-op), so the matrix and the worker both find it by name.
    """
    base, registry = (Strategy, STRATEGIES) if kind == "strategy" else (Problem, PROBLEMS)
    if not is_file_reference(ref):
        try:
            return registry.get(ref)
        except UnknownNameError as error:
            raise BadReference(str(error)) from None
    path, _, class_name = ref.rpartition(":")
    module = load_file(Path(path), kind)
    cls = getattr(module, class_name, None)
    if cls is None:
        defined = sorted(
            n for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__
        )
        known = ", ".join(defined) or "none"
        raise BadReference(f"{path} has no class {class_name!r}; classes there: {known}")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise BadReference(f"{ref} is not a deqbench {base.__name__} subclass")
    if "name" not in cls.__dict__:
        raise BadReference(f"{ref} sets no `name`; a {kind} class needs name = '...' to be run")
    try:
        registry.add(cls)
    except DuplicateNameError as error:
        raise BadReference(str(error)) from None
    return cls


def load_file(path: Path, kind: str):
    """Import a user's Python file once per process (under a name derived from its path)."""
    if not path.is_file():
        raise BadReference(f"{kind} file {str(path)!r} not found (expected path/to/file.py:ClassName)")
    resolved = path.resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:12]
    module_name = f"deqbench_user_{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[module_name]
        message = str(error).splitlines()[0] if str(error) else ""
        raise BadReference(f"could not import {path}: {type(error).__name__}: {message}") from None
    return module


# ---------------------------------------------------------------------- the cell
@dataclass(frozen=True)
class CellSpec:
    """Everything a worker needs to measure one cell; plain data, so it pickles."""

    strategy: str  # registry name or file.py:Class
    problem: str
    query: str
    preset: str
    overrides: dict[str, Any]
    device: str
    dtype: str
    seed: int
    solver_settings: dict[str, Any]  # f_tol, b_tol, f_max_iter, b_max_iter
    warmup: int
    repeats: int
    threads: int | None = None
    log_path: str | None = None  # where the worker's stdout, stderr and traceback go


@dataclass
class Measurement:
    """What came back from a worker (or what the parent knows when nothing did)."""

    status: str
    message: str = ""
    values: dict[str, np.ndarray] = field(default_factory=dict)  # float64, CPU
    solver_totals: dict[str, float] = field(default_factory=dict)
    times: list[float] = field(default_factory=list)  # seconds, one per repeat
    memory_metric: str = ""  # peak_rss_bytes or cuda_peak_bytes
    peak_bytes: float = float("nan")
    saved_bytes: float = float("nan")
    threads: int = 0
    device_name: str = ""
    wall_seconds: float = 0.0  # the whole cell, process start to result

    @property
    def time_median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")

    @property
    def time_iqr(self) -> float:
        if len(self.times) < 2:
            return 0.0 if self.times else float("nan")
        q1, _, q3 = statistics.quantiles(self.times, n=4, method="inclusive")
        return q3 - q1


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    import platform

    return platform.processor() or platform.machine()


def build(spec: CellSpec) -> tuple[Strategy, Problem]:
    problem_cls = resolve_class(spec.problem, "problem")
    strategy_cls = resolve_class(spec.strategy, "strategy")
    problem = problem_cls(
        spec.preset, dtype=DTYPES[spec.dtype], device=spec.device, seed=spec.seed, **spec.overrides
    )
    return strategy_cls(**spec.solver_settings), problem


def memory_pass(strategy: Strategy, problem: Problem, query: str):
    """Runs measured for memory: (result, peak meter, saved-tensor bytes or NaN).

    Peak memory and saved bytes come from two separate runs: the saved-tensor hooks keep a
    Python wrapper per saved tensor and change what torch.func allocates, which would show
    in the peak (4 MiB on analytic's pinn_grad at the quick size, against 16 KiB without
    them). Saved-tensor hooks are refused by some torch.func transforms; such a strategy's
    saved bytes are reported as NaN.
    """
    with peak_memory(problem.device) as peak:
        result = strategy.run(query, problem)
    try:
        with saved_tensor_bytes() as saved:
            strategy.run(query, problem)
    except RuntimeError as error:
        if "hook" not in str(error).lower():
            raise
        return result, peak, float("nan")
    return result, peak, float(saved.peak_bytes)


def timed_run(strategy: Strategy, problem: Problem, query: str) -> float:
    synchronize(problem.device)
    start = time.perf_counter()
    strategy.run(query, problem)
    synchronize(problem.device)
    return time.perf_counter() - start


def measure(spec: CellSpec) -> Measurement:
    """Build, warm up, measure memory (and keep that answer), then time ``repeats`` runs."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    pin_malloc_thresholds()
    strategy, problem = build(spec)
    device = problem.device
    reason = strategy.unsupported_reason(spec.query, problem)
    if reason is not None:
        return Measurement(UNSUPPORTED, reason)
    for _ in range(spec.warmup):
        strategy.run(spec.query, problem)
    result, peak, saved = memory_pass(strategy, problem, spec.query)
    times = [timed_run(strategy, problem, spec.query) for _ in range(spec.repeats)]
    return Measurement(
        MEASURED,
        values={k: v.detach().to("cpu", torch.float64).numpy() for k, v in result.values.items()},
        solver_totals={k: float(v) for k, v in result.solver_totals().items()},
        times=times,
        memory_metric=peak.metric,
        peak_bytes=float(peak.peak_bytes),
        saved_bytes=saved,
        threads=torch.get_num_threads(),
        device_name=device_name(device),
    )


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or torch's CPU allocator giving up
    (a plain RuntimeError: "DefaultCPUAllocator: can't allocate memory")."""
    oom_types = tuple(t for t in (getattr(torch, "OutOfMemoryError", None), MemoryError) if t is not None)
    return isinstance(error, oom_types) or "can't allocate memory" in str(error)


def measure_safely(spec: CellSpec) -> Measurement:
    """:func:`measure`, with every exception turned into a status and a one-line message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence is reported as a status instead
            return measure(spec)
    except UnsupportedQueryError as error:  # a size override made the query impossible
        return Measurement(UNSUPPORTED, str(error))
    except Exception as error:  # noqa: BLE001 - anything the cell raises is its result
        traceback.print_exc()
        return Measurement(OOM if is_out_of_memory(error) else ERROR, one_line(error))


def redirect_output(log_path: str | None) -> None:
    """Send the worker's stdout and stderr (and a crash's stack) to the cell's log file."""
    log = open(log_path or os.devnull, "a", buffering=1)  # noqa: SIM115 - lives with the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    faulthandler.enable(log)


# ------------------------------------------------------------------ worker server
#
# A cell's process is forked from a long-lived *worker server*: a fresh interpreter, started
# once per parent process with ``python -c``, that imports torch and deqbench and then forks
# one child per cell. Forking gives each cell a process of its own in milliseconds, where a
# fresh interpreter needs seconds to import torch. Unlike multiprocessing's forkserver, the
# server never imports the parent's ``__main__`` (a user's script needs no main guard). The
# server is single-threaded and has run no tensor operation big enough to start OpenMP's
# thread pool or any CUDA context, so forking it is safe.
#
# Protocol (pickled messages over the server's stdin and stdout): the parent sends
# ``(spec, result_path, cwd)``; the server forks, replies ``("started", pid)``, waits for the
# child and replies ``("ended", exit code)``. The child writes its Measurement to
# result_path (atomically) and exits; the parent kills it by pid on a timeout.

SERVER_START_TIMEOUT_S = 300.0
#: How often the parent checks a cell's resident set against the memory cap.
POLL_S = 0.05

#: Modules torch imports lazily on a first call (torch._dynamo alone takes ~4 s, on the
#: first torch.func transform), and ones problems import inside build(): imported once in
#: the server instead of in every cell's process.
PRELOAD_MODULES = ["torch._dynamo", "torch._decomp.decompositions_for_jvp", "scipy.integrate"]


def preload() -> None:
    for module in PRELOAD_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    STRATEGIES.discover()
    PROBLEMS.discover()
    # Everything imported so far lives as long as the server: keep it out of the collector's
    # sight, so the gc.collect() before each memory baseline takes milliseconds, not 0.4 s
    # (and forked children do not touch, hence copy, those pages).
    gc.collect()
    gc.freeze()


def serve() -> None:
    """The worker server's main loop (runs in its own interpreter)."""
    preload()
    # Ctrl-C reaches the whole process group. The server and its cells ignore it: the parent
    # decides (it kills the cell in flight and stops), and the server ends when it reads
    # end-of-file from the parent. A cell killed by Ctrl-C is never recorded as an error.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = Connection(os.dup(0), writable=False)
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print must not corrupt the protocol on stdout
    replies.send(("ready", os.getpid()))
    while True:
        try:
            spec, result_path, cwd = requests.recv()
        except EOFError:  # the parent is gone
            return
        pid = os.fork()
        if pid == 0:
            run_child(spec, result_path, cwd, requests, replies)
        replies.send(("started", pid))
        _, status = os.waitpid(pid, 0)
        replies.send(("ended", os.waitstatus_to_exitcode(status)))


def run_child(spec: CellSpec, result_path: str, cwd: str, *server_channels: Connection) -> None:
    """A cell's process: measure, leave the measurement in result_path, exit (never returns).

    It works in the parent's current folder (the server's may differ), so relative paths in
    a user's problem mean what they meant to the user.
    """
    code = 1
    try:
        for channel in server_channels:  # the protocol belongs to the server alone
            channel.close()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.chdir(cwd)
        redirect_output(spec.log_path)
        measurement = measure_safely(spec)
        write_atomically(Path(result_path), pickle.dumps(measurement))
        code = 0
    except BaseException:  # noqa: BLE001 - reported on stderr; the parent sees the exit code
        traceback.print_exc()
    finally:
        os._exit(code)


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class WorkerServer:
    """The parent's handle on the worker server: start it once, run cells through it."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from deqbench.harness.worker import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.requests = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self.replies = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        self.pid = self._expect("ready", SERVER_START_TIMEOUT_S)
        self.scratch = Path(tempfile.mkdtemp(prefix="deqbench-cells-"))

    def alive(self) -> bool:
        return self.process.poll() is None

    def _expect(self, kind: str, timeout: float | None):
        if not wait([self.replies], timeout):
            raise TimeoutError(f"worker server sent no {kind!r} within {timeout:g} s")
        message = self.replies.recv()
        if message[0] != kind:
            raise RuntimeError(f"worker server sent {message!r}, expected {kind!r}")
        return message[1]

    def run(self, spec: CellSpec, timeout: float | None, max_memory: int | None = None) -> Measurement:
        """One cell: a Measurement always, whether the child answered, died or was stopped."""
        result_path = self.scratch / f"cell-{os.getpid()}-{time.monotonic_ns()}.pickle"
        self.requests.send((spec, str(result_path), os.getcwd()))
        child = self._expect("started", None)
        try:
            stopped = self._watch(child, timeout, max_memory)
        except BaseException:  # Ctrl-C: the cell inherits the server's deafness to it
            kill(child)
            self._expect("ended", 10)
            raise
        exitcode = self._expect("ended", None)
        if stopped is not None:
            result_path.unlink(missing_ok=True)
            return stopped
        if not result_path.exists():
            return death_record(exitcode)
        measurement = pickle.loads(result_path.read_bytes())
        result_path.unlink()
        return measurement

    def _watch(self, child: int, timeout: float | None, max_memory: int | None) -> Measurement | None:
        """Wait for the child to end; kill it past the timeout or the memory cap, and say why.

        The cap is checked every POLL_S on the child's resident set: a cell that would eat
        the machine is stopped before the kernel starts reclaiming everyone's memory.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = POLL_S if max_memory else remaining
            if remaining is not None and step is not None:
                step = min(step, remaining)
            if wait([self.replies], step):
                return None
            if deadline is not None and time.monotonic() >= deadline:
                kill(child)
                return Measurement(TIMEOUT, f"no result within --timeout {timeout:g} s; worker killed")
            if max_memory and resident_bytes(child) > max_memory:
                kill(child)
                return Measurement(
                    OOM, f"resident memory above --max-memory {max_memory / 2**30:.3g} GiB; worker killed"
                )

    def close(self) -> None:
        self.requests.close()
        self.replies.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.scratch, ignore_errors=True)


def resident_bytes(pid: int) -> int:
    """A process's resident set (0 once it is gone)."""
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def death_record(exitcode: int | None) -> Measurement:
    """Why a worker ended without a result: SIGKILL is most often the kernel's OOM killer."""
    if exitcode is not None and exitcode < 0:
        signal_name = signal.Signals(-exitcode).name
        if -exitcode == signal.SIGKILL:
            return Measurement(OOM, f"worker killed by {signal_name} (out of memory?)")
        return Measurement(ERROR, f"worker died with signal {signal_name}")
    return Measurement(ERROR, f"worker exited with code {exitcode} without a result")


_server: WorkerServer | None = None


def worker_server() -> WorkerServer:
    """The process's worker server, started on first use and again if it died."""
    global _server
    if _server is None or not _server.alive():
        _server = WorkerServer()
        atexit.register(_server.close)
    return _server


def run_in_worker(spec: CellSpec, timeout: float | None = None, max_memory: int | None = None) -> Measurement:
    """Measure a cell in a process of its own; a timeout or a death is a status, not a raise."""
    start = time.perf_counter()
    try:
        measurement = worker_server().run(spec, timeout, max_memory)
    except (EOFError, OSError) as error:  # the server itself died: the next cell restarts it
        measurement = Measurement(ERROR, f"worker server died: {one_line(error)}")
    measurement.wall_seconds = time.perf_counter() - start
    return measurement
