"""Memory measurements: the bytes autograd saves for backward, and a process's peak memory.

``tracemalloc`` does not see torch tensors, so deqbench measures two things itself: the peak
of the bytes held alive by autograd for backward, through
``torch.autograd.graph.saved_tensors_hooks``, and the peak memory of the process running a
cell (:class:`PeakRSS` on CPU, :class:`CudaPeak` on CUDA; :func:`peak_memory` picks one).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch


def _storage_key(tensor: torch.Tensor) -> tuple[int, int] | None:
    """(address, bytes) of the storage behind a tensor; None if it has no real storage."""
    try:
        from torch._C._functorch import get_unwrapped, is_functorch_wrapped_tensor

        while is_functorch_wrapped_tensor(tensor):  # torch.func wraps what it saves
            tensor = get_unwrapped(tensor)
    except ImportError:  # pragma: no cover - functorch internals moved
        pass
    try:
        storage = tensor.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):
        return None


class SavedTensorMeter:
    """Live and peak bytes of the storages autograd holds for backward, each counted once.

    A saved tensor is counted from the moment autograd packs it until the graph node that
    holds it is freed; several saved views of one storage count once.
    """

    def __init__(self) -> None:
        self.live_bytes = 0
        self.peak_bytes = 0
        self.packed = 0
        self._references: dict[tuple[int, int], int] = {}

    def _pack(self, tensor: torch.Tensor):
        key = _storage_key(tensor)
        if key is None:
            return tensor
        self.packed += 1
        count = self._references.get(key, 0)
        self._references[key] = count + 1
        if count == 0:
            self.live_bytes += key[1]
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
        return _Saved(tensor, key, self)

    def _release(self, key: tuple[int, int]) -> None:
        count = self._references.get(key, 0) - 1
        if count <= 0:
            self._references.pop(key, None)
            self.live_bytes -= key[1]
        else:
            self._references[key] = count

    @staticmethod
    def _unpack(saved):
        return saved.tensor if isinstance(saved, _Saved) else saved

    @contextmanager
    def measure(self):
        with torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack):
            yield self


class _Saved:
    """What autograd keeps instead of a saved tensor: the tensor, released on collection."""

    __slots__ = ("tensor", "key", "meter")

    def __init__(self, tensor, key, meter):
        self.tensor, self.key, self.meter = tensor, key, meter

    def __del__(self):
        self.meter._release(self.key)


@contextmanager
def saved_tensor_bytes():
    """``with saved_tensor_bytes() as meter: ...``; then ``meter.peak_bytes``."""
    meter = SavedTensorMeter()
    with meter.measure():
        yield meter


# ------------------------------------------------------------------ peak memory of a process
#
# The runner measures each cell in a worker process of its own: the peak of the memory the
# query used, over the worker's baseline once the problem is built and warm-up is done. On
# CPU that is the kernel's own high-water mark of the resident set (VmHWM), which catches
# every allocation however short-lived; on CUDA it is torch's caching allocator's peak.

_PROC_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"
_RESET_PEAK_RSS = "5"  # clear_refs command: reset VmHWM to the current VmRSS (Linux >= 4.0)

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def read_proc_status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        with open(_PROC_STATUS) as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current VmRSS; False where the kernel refuses."""
    try:
        with open(_CLEAR_REFS, "w") as clear_refs:
            clear_refs.write(_RESET_PEAK_RSS)
        return True
    except OSError:
        return False


@functools.cache
def _libc():
    """The C library already loaded in this process (dlopen(NULL)); None where unavailable.

    Not ``ctypes.util.find_library``, which runs ldconfig or a compiler in a subprocess.
    """
    import ctypes

    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def pin_malloc_thresholds(threshold_bytes: int = 128 * 1024) -> None:
    """Keep glibc from holding freed memory, so the resident set follows what is live.

    glibc raises its mmap threshold (up to 32 MB) each time a large block is freed, after
    which blocks of that size come from the heap and stay resident when freed: a warm-up
    run then leaves pages behind that the measured run reuses unseen. Setting the
    thresholds explicitly turns that adaptation off. A no-op off glibc.
    """
    _set_malloc_thresholds(threshold_bytes)


#: the ceiling of glibc's adaptive mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
STEADY_MMAP_THRESHOLD = 32 * 1024 * 1024


def steady_malloc_thresholds() -> None:
    """The thresholds glibc's own adaptation reaches in a warmed-up process: blocks up to
    32 MiB come from the heap, and freed ones stay there for reuse (trim at twice that).

    For timing, after :func:`pin_malloc_thresholds` served a memory measurement: pinned,
    every block over 128 KiB is a fresh mmap whose pages the kernel faults in and zeroes at
    each use, a cost an ordinary process does not pay and that falls unevenly on the cells
    (tanh m = 256, batch 128, float64, a state is 256 KiB: one plain forward solve took
    2.9x as long pinned, on a loaded machine). A no-op off glibc.
    """
    _set_malloc_thresholds(STEADY_MMAP_THRESHOLD)


def _set_malloc_thresholds(mmap_bytes: int) -> None:
    """glibc's mmap threshold, and its trim threshold at twice that; a no-op off glibc."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return
    libc.mallopt(_M_MMAP_THRESHOLD, mmap_bytes)
    libc.mallopt(_M_TRIM_THRESHOLD, 2 * mmap_bytes)


def release_free_heap() -> None:
    """Hand freed heap pages back to the kernel (glibc ``malloc_trim``), before a baseline."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


class PeakRSS:
    """Peak resident set over the baseline taken on entry, in bytes (``.peak_bytes``).

    Uses VmHWM reset through /proc/self/clear_refs where the kernel allows it; elsewhere it
    falls back to sampling the resident set from a thread every millisecond (psutil), which
    can miss a peak shorter than that.
    """

    metric = "peak_rss_bytes"

    def __init__(self, collect_garbage: bool = True) -> None:
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self.method = ""
        self._sampler: _RSSSampler | None = None
        #: gc.collect() on entry; a training loop that meters every step passes False, for a
        #: full collection costs a quarter of a second once torch and JAX are imported
        self.collect_garbage = collect_garbage

    def __enter__(self) -> PeakRSS:
        import gc

        if self.collect_garbage:
            gc.collect()
        release_free_heap()
        if reset_peak_rss() and read_proc_status_bytes("VmHWM") is not None:
            self.method = "VmHWM"
            self.baseline_bytes = read_proc_status_bytes("VmRSS") or 0
        else:
            self.method = "sampled"
            self._sampler = _RSSSampler()
            self.baseline_bytes = self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        sampled = self._sampler is not None
        peak = self._sampler.stop() if sampled else (read_proc_status_bytes("VmHWM") or 0)
        self.peak_bytes = max(0, peak - self.baseline_bytes)


class _RSSSampler:
    """The highest resident set seen by a background thread polling psutil."""

    def __init__(self, interval_s: float = 1e-3) -> None:
        import threading

        import psutil

        self._process = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.peak = 0

    def start(self) -> int:
        baseline = self._process.memory_info().rss
        self.peak = baseline
        self._thread.start()
        return baseline

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, self._process.memory_info().rss)


class CudaPeak:
    """Peak bytes torch's CUDA allocator held over the baseline at entry (``.peak_bytes``)."""

    metric = "cuda_peak_bytes"
    method = "max_memory_allocated"

    def __init__(self, device: torch.device | str = "cuda") -> None:
        self.device = torch.device(device)
        self.baseline_bytes = 0
        self.peak_bytes = 0

    def __enter__(self) -> CudaPeak:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self.baseline_bytes = torch.cuda.memory_allocated(self.device)
        return self

    def __exit__(self, *exc) -> None:
        torch.cuda.synchronize(self.device)
        self.peak_bytes = max(0, torch.cuda.max_memory_allocated(self.device) - self.baseline_bytes)


class JaxGpuPeak:
    """Peak bytes XLA's GPU allocator held over the bytes in use at entry.

    XLA's peak cannot be reset; in a cell's own process, after warm-up runs identical to
    the measured one, the peak so far is the peak of one run. (The worker sets
    XLA_PYTHON_CLIENT_PREALLOCATE=false, so the allocator holds what is used.)
    """

    metric = "jax_gpu_peak_bytes"
    method = "memory_stats peak_bytes_in_use"

    def __init__(self) -> None:
        from deqbench.backends import jax_device

        self.device = jax_device("cuda")
        self.baseline_bytes = 0
        self.peak_bytes = 0

    def __enter__(self) -> JaxGpuPeak:
        self.baseline_bytes = self.device.memory_stats().get("bytes_in_use", 0)
        return self

    def __exit__(self, *exc) -> None:
        peak = self.device.memory_stats().get("peak_bytes_in_use", 0)
        self.peak_bytes = max(0, peak - self.baseline_bytes)


def peak_memory(
    device: torch.device | str, backend: str = "torch", collect_garbage: bool = True
) -> PeakRSS | CudaPeak | JaxGpuPeak:
    """The peak-memory meter for a device: resident set on CPU, the framework's allocator
    peak on CUDA."""
    device = torch.device(device)
    if device.type != "cuda":
        return PeakRSS(collect_garbage)
    return JaxGpuPeak() if backend == "jax" else CudaPeak(device)
