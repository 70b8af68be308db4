"""The worker server: every cell's jobs run in a process of their own, forked in milliseconds.

A long-lived *worker server* (a fresh interpreter, started once per parent process with
``python -c``) imports torch and deqbench, then forks one child per job: a fresh process
in milliseconds, where a new interpreter needs seconds to import torch. Unlike
multiprocessing's forkserver it never imports the parent's ``__main__`` (a user's script
needs no main guard). The server is single-threaded and has run no tensor operation big
enough to start OpenMP's thread pool or a CUDA context, so forking it is safe.

A job is any picklable callable (:class:`~deqbench.harness.worker.measure.MeasureJob`,
:class:`~deqbench.harness.run.verdicts.OracleJob`); its return value comes back pickled through
a pipe, never through a file, so a killed parent leaves nothing behind in the temp folder.

Protocol (pickled messages over the server's stdin and stdout): the parent sends
``(job, cwd, log_path)``; the server forks, replies ``("started", pid)``, reads the child's
result from its pipe until the child ends, and replies ``("ended", exit code, bytes, peak
resident bytes)``.
The parent kills the child by pid past the timeout or the memory cap.

No orphans: the server and every child ask the kernel for SIGKILL when their parent dies
(``PR_SET_PDEATHSIG``), so a parent killed by any signal takes its server and the cell in
flight with it. (The signal follows the *thread* that started the server: a run started
from a short-lived thread gets a new server on its next cell.)
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import faulthandler
import gc
import importlib
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

import psutil

from deqbench.harness.results.status import Status

SERVER_START_TIMEOUT_S = 300.0
#: How often the parent checks a job's resident set against the memory cap.
POLL_S = 0.05
#: Signals by which a process crashes of its own accord: an error of the cell, not a kill.
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT}

#: Modules torch imports lazily on a first call (torch._dynamo alone takes ~4 s, on the
#: first torch.func transform), and ones problems import inside build(): imported once in
#: the server instead of in every cell's process.
PRELOAD_MODULES = ["torch._dynamo", "torch._decomp.decompositions_for_jvp", "scipy.integrate"]
#: JAX and the peers built on it (1.4 s of CPU time to import, in every JAX cell otherwise).
#: Importing them starts no thread and no XLA backend (the backend, its thread pools and its
#: reading of XLA_FLAGS come with a cell's first computation, after the fork), so forking
#: stays safe. jaxopt is left out: importing it starts a thread.
PRELOAD_JAX_MODULES = ["jax", "jax.numpy", "equinox", "lineax", "optimistix"]


@dataclass(frozen=True)
class Stopped:
    """A job that returned nothing: stopped by the parent, killed, or crashed."""

    status: Status
    message: str


# ------------------------------------------------------------------ in the server
def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies (Linux); exit now if it already has."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


def preload() -> None:
    from deqbench.problems.base import PROBLEMS
    from deqbench.strategies.base import STRATEGIES

    for module in PRELOAD_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    preload_jax()
    STRATEGIES.discover()
    PROBLEMS.discover()
    # Everything imported so far lives as long as the server: keep it out of the collector's
    # sight, so the gc.collect() before each memory baseline takes milliseconds, not 0.4 s
    # (and forked children do not touch, hence copy, those pages).
    gc.collect()
    gc.freeze()


def preload_jax() -> None:
    """JAX and its peers imported (where installed), with the persistent compilation cache
    on (:mod:`.jax_cache`); no backend started."""
    from deqbench.backends import jax_unavailable_reason
    from deqbench.harness.worker import jax_cache

    if jax_unavailable_reason() is not None:
        return
    for module in PRELOAD_JAX_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    jax_cache.enable(sys.modules["jax"])


def serve(parent_pid: int, cpus: list[int] | None = None) -> None:
    """The worker server's main loop (runs in its own interpreter). ``cpus``: the CPUs it
    and every job it forks may use, set before torch is imported so that torch's and XLA's
    thread pools are sized to them (cells run side by side each on a CPU of its own)."""
    die_with_parent(parent_pid)
    if cpus:
        os.sched_setaffinity(0, cpus)
    preload()
    # Ctrl-C reaches the whole process group. The server and its cells ignore it: the parent
    # decides (it kills the cell in flight and stops), and the server ends when it reads
    # end-of-file from the parent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    requests = Connection(os.dup(0), writable=False)
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print must not corrupt the protocol on stdout
    server_pid = os.getpid()
    replies.send(("ready", server_pid))
    while True:
        try:
            job, cwd, log_path = requests.recv()
        except EOFError:  # the parent is gone
            return
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            run_child(job, cwd, log_path, server_pid, write_end, requests, replies)
        os.close(write_end)
        replies.send(("started", pid))
        data = read_all(read_end)
        _, status, usage = os.wait4(pid, 0)
        peak_bytes = usage.ru_maxrss * 1024  # Linux reports KiB
        replies.send(("ended", os.waitstatus_to_exitcode(status), data, peak_bytes))


def read_all(fd: int) -> bytes:
    chunks = []
    with os.fdopen(fd, "rb") as pipe:
        while chunk := pipe.read(1 << 20):
            chunks.append(chunk)
    return b"".join(chunks)


def run_child(
    job, cwd: str, log_path: str | None, server_pid: int, result_fd: int, *server_channels: Connection
) -> None:
    """A job's process: run it, send its pickled result down the pipe, exit (never returns).

    It works in the parent's current folder (the server's may differ), so relative paths in
    a user's problem mean what they meant to the user.
    """
    code = 1
    try:
        die_with_parent(server_pid)
        for channel in server_channels:  # the protocol belongs to the server alone
            channel.close()
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.chdir(cwd)
        redirect_output(log_path)
        payload = pickle.dumps(job())
        with os.fdopen(result_fd, "wb") as pipe:
            pipe.write(payload)
        code = 0
    except BaseException:  # noqa: BLE001 - reported on stderr; the parent sees the exit code
        traceback.print_exc()
    finally:
        os._exit(code)


def redirect_output(log_path: str | None) -> None:
    """Send the job's stdout and stderr (and a crash's stack) to the cell's log file."""
    log = open(log_path or os.devnull, "a", buffering=1)  # noqa: SIM115 - lives with the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    faulthandler.enable(log)


# ------------------------------------------------------------------ in the parent
class WorkerServer:
    """The parent's handle on the worker server: start it once, run jobs through it.
    ``cpus``: the CPUs the server and its jobs may use (None: all this process may)."""

    def __init__(self, cpus: list[int] | None = None) -> None:
        serve_call = f"serve({os.getpid()}, {sorted(cpus) if cpus else None})"
        self.process = subprocess.Popen(
            [sys.executable, "-c", f"from deqbench.harness.worker.server import serve; {serve_call}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.requests = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self.replies = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        self.pid = self._expect("ready", SERVER_START_TIMEOUT_S)[0]

    def alive(self) -> bool:
        return self.process.poll() is None

    def _expect(self, kind: str, timeout: float | None) -> tuple:
        if not wait([self.replies], timeout):
            raise TimeoutError(f"worker server sent no {kind!r} within {timeout:g} s")
        message = self.replies.recv()
        if message[0] != kind:
            raise RuntimeError(f"worker server sent {message!r}, expected {kind!r}")
        return message[1:]

    def run(self, job, deadline: float | None, max_memory: int | None, log_path: str | None = None):
        """The job's return value, or :class:`Stopped` if it died, timed out or hit the cap.

        ``deadline`` is a ``time.monotonic()`` instant (one deadline can cover several jobs).
        """
        self.requests.send((job, os.getcwd(), log_path))
        (child,) = self._expect("started", None)
        try:
            stopped = self._watch(child, deadline, max_memory)
        except BaseException:  # Ctrl-C: the cell inherits the server's deafness to it
            kill(child)
            self._expect("ended", 10)
            raise
        exitcode, data, peak_bytes = self._expect("ended", None)
        if stopped is not None:
            return stopped
        if max_memory and peak_bytes > max_memory:  # ended between two polls, above the cap
            return over_the_cap(max_memory, "its peak, after it ended")
        if exitcode == 0 and data:
            return pickle.loads(data)
        return death_record(exitcode)

    def _watch(self, child: int, deadline: float | None, max_memory: int | None) -> Stopped | None:
        """Wait for the child to end; kill it past the deadline or the memory cap, and say why.

        The cap is checked every POLL_S on the child's resident set: a cell that would eat
        the machine is stopped before the kernel starts reclaiming everyone's memory. (A cell
        that ends between two polls is held to the cap by its peak, in :meth:`run`.)
        """
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            step = POLL_S if max_memory else remaining
            if remaining is not None and step is not None:
                step = min(step, remaining)
            if wait([self.replies], step):
                return None
            if deadline is not None and time.monotonic() >= deadline:
                kill(child)
                return Stopped(Status.TIMEOUT, "worker killed")
            if max_memory and resident_bytes(child) > max_memory:
                kill(child)
                return over_the_cap(max_memory)

    def close(self) -> None:
        self.requests.close()
        self.replies.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def over_the_cap(max_memory: int, what: str = "worker killed") -> Stopped:
    limit = f"{max_memory / 2**30:.3g} GiB"
    return Stopped(Status.OOM, f"resident memory above --max-memory {limit}; {what}")


def resident_bytes(pid: int) -> int:
    """A process's resident set (0 once it is gone)."""
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def death_record(exitcode: int | None) -> Stopped:
    """Why a worker ended without a result: a crash is an error, any other signal a kill.

    deqbench's own kills (timeout, memory cap) are recorded where they are made; a SIGKILL
    seen here came from outside (another process, or the kernel's out-of-memory killer).
    """
    if exitcode is not None and exitcode < 0:
        sig = signal.Signals(-exitcode)
        if sig in CRASH_SIGNALS:
            return Stopped(Status.ERROR, f"worker crashed with signal {sig.name}")
        return Stopped(Status.KILLED, f"worker killed by {sig.name} from outside deqbench")
    return Stopped(Status.ERROR, f"worker exited with code {exitcode} without a result")


#: One worker server per thread: a server's protocol is one job at a time, and an executor
#: that runs cells from several threads (a Dask worker's thread pool, ``--jobs``) gives each
#: its own.
_local = threading.local()


class RunStopped(RuntimeError):
    """A job asked of a :class:`Slot` that its executor has stopped (the run was interrupted)."""


@dataclass
class Slot:
    """One of the places where an executor runs cells side by side (``--jobs``): a worker
    server of its own on its CPUs, used by one thread at a time (whichever thread of the
    pool runs the slot's cell). Stopping it kills its server, and with it the job in flight,
    and refuses new jobs, so an interrupted run does not wait for the cells in flight."""

    cpus: list[int] | None = None
    stopped: bool = False
    server: WorkerServer | None = None

    def worker_server(self) -> WorkerServer:
        if self.stopped:
            raise RunStopped("the run was stopped")
        if self.server is None or not self.server.alive():
            self.server = WorkerServer(self.cpus)
            atexit.register(self.server.close)
        return self.server

    def stop(self) -> None:
        self.stopped = True
        if self.server is not None and self.server.alive():
            self.server.process.kill()


def use_slot(slot: Slot | None) -> None:
    """Run this thread's jobs in ``slot`` (its server, on its CPUs); None: the thread's own."""
    _local.slot = slot


def worker_server() -> WorkerServer:
    """The worker server of this thread's slot, or else this thread's own; started on first
    use and again if it died."""
    slot = getattr(_local, "slot", None)
    if slot is not None:
        return slot.worker_server()
    server = getattr(_local, "server", None)
    if server is None or not server.alive():
        server = _local.server = WorkerServer()
        atexit.register(server.close)
    return server


def current_server() -> WorkerServer | None:
    """This thread's worker server if one was started (for tests and diagnostics)."""
    return getattr(_local, "server", None)


def run_job(job, deadline: float | None = None, max_memory: int | None = None, log_path: str | None = None):
    """Run a job in a process of its own: its value, or :class:`Stopped`; never raises for
    the job's sake (a dead server is an error record, and the next job restarts it)."""
    handle = worker_server()
    try:
        return handle.run(job, deadline, max_memory, log_path)
    except (EOFError, OSError) as error:
        return server_death_record(handle, error)


def server_death_record(handle: WorkerServer, error: BaseException) -> Stopped:
    """The cell in flight when its server died (the cell died with it: PR_SET_PDEATHSIG)."""
    try:
        exitcode = handle.process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        exitcode = None
    if exitcode is not None and exitcode < 0:
        sig = signal.Signals(-exitcode).name
        return Stopped(
            Status.KILLED, f"worker server killed by {sig} from outside deqbench, and its cell with it"
        )
    return Stopped(Status.ERROR, f"worker server died: {type(error).__name__}: {error}")


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout
