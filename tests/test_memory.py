"""Memory meters: peak resident set, CUDA allocator peak, bytes autograd saves.

Tests internals by their path: worker.memory's meters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deqbench.harness.worker import MEASURED, CellSpec, MeasureJob, deadline_after, run_job
from deqbench.harness.worker.memory import (
    CudaPeak,
    PeakRSS,
    peak_memory,
    pin_malloc_thresholds,
    read_proc_status_bytes,
    saved_tensor_bytes,
)

FIXTURES = Path(__file__).parent / "fixtures"
MB = 1_000_000
linux_only = pytest.mark.skipif(read_proc_status_bytes("VmHWM") is None, reason="needs /proc (Linux)")


def touched(n_bytes: int) -> torch.Tensor:
    """A tensor whose pages are all written (an untouched torch.empty costs no RSS)."""
    return torch.ones(n_bytes // 8, dtype=torch.float64)


@linux_only
def test_peak_rss_sees_a_short_lived_200mb_tensor():
    with PeakRSS() as meter:
        held = touched(200 * MB)
        del held
    assert meter.method == "VmHWM"
    assert meter.peak_bytes == pytest.approx(200 * MB, rel=0.1)


@linux_only
def test_peak_rss_is_over_the_baseline_not_the_process_lifetime():
    held = touched(100 * MB)
    del held
    with PeakRSS() as meter:
        small = touched(10 * MB)
        del small
    assert meter.peak_bytes == pytest.approx(10 * MB, rel=0.25)


@linux_only
def test_memory_freed_by_a_warm_up_is_not_reused_unseen():
    """glibc raises its mmap threshold after a large free; pinned, a repeat is seen again."""
    pin_malloc_thresholds()
    warm_up = touched(16 * MB)
    del warm_up
    with PeakRSS() as meter:
        again = touched(16 * MB)
        del again
    assert meter.peak_bytes == pytest.approx(16 * MB, rel=0.25)


def test_saved_tensor_bytes_counts_each_storage_once():
    x = torch.ones(1_000_000, dtype=torch.float64, requires_grad=True)
    with saved_tensor_bytes() as meter:
        y = (x * x).sum()  # mul saves x twice: one storage
    assert meter.peak_bytes == 8 * MB
    del y


def test_peak_memory_picks_the_meter_of_the_device():
    assert isinstance(peak_memory("cpu"), PeakRSS)
    assert peak_memory("cpu").metric == "peak_rss_bytes"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_sees_a_200mb_tensor():
    with CudaPeak("cuda") as meter:
        held = torch.ones(200 * MB // 8, dtype=torch.float64, device="cuda")
        del held
    assert meter.peak_bytes == pytest.approx(200 * MB, rel=0.1)


@linux_only
def test_a_worker_reports_a_200mb_query_at_200mb():
    spec = CellSpec(
        strategy=f"{FIXTURES / 'faulty_strategies.py'}:Allocates200MB",
        problem="tanh",
        query="forward",
        preset="quick",
        overrides={},
        device="cpu",
        dtype="float64",
        seed=0,
        solver_settings={},
        warmup=1,
        repeats=1,
    )
    measurement = run_job(MeasureJob(spec), deadline_after(120))
    assert measurement.status == MEASURED, measurement.message
    assert measurement.memory_metric == "peak_rss_bytes"
    assert measurement.peak_bytes == pytest.approx(200 * MB, rel=0.1)
