"""The names of the metrics in a row's ``metric`` column, in one place.

Every row of a results file names its metric with one of these strings (plus the names
built from them: ``forward_iterations``, ``xla_<name>``, ``relative_error_<oracle>``).
:class:`MetricName` members are ``str``: they compare equal to the strings stored in
parquet and CSV files, so files written before the vocabulary existed read the same.
"""

from __future__ import annotations

from enum import StrEnum


class MetricName(StrEnum):
    """A metric of a cell (run) or of a training step."""

    RELATIVE_ERROR = "relative_error"
    ORACLE_ERROR_ESTIMATE = "oracle_error_estimate"
    ORACLE_DISAGREEMENT = "oracle_disagreement"
    TIME_MEDIAN = "time_median"
    TIME_IQR = "time_iqr"
    #: one timed repeat's seconds; the ``output`` column holds the repeat's index ("0", "1", ...)
    TIME_REPEAT = "time_repeat"
    REPEATS = "repeats"
    WARMUP = "warmup"
    COMPILE_TIME = "compile_time"
    CELL_WALL_TIME = "cell_wall_time"
    PEAK_RSS_BYTES = "peak_rss_bytes"
    CUDA_PEAK_BYTES = "cuda_peak_bytes"
    JAX_GPU_PEAK_BYTES = "jax_gpu_peak_bytes"
    SAVED_TENSOR_BYTES = "saved_tensor_bytes"
    FORWARD_ITERATIONS = "forward_iterations"
    BACKWARD_ITERATIONS = "backward_iterations"
    # training steps (deqbench train)
    LOSS = "loss"
    TEST_ERROR = "test_error"
    STEP_TIME = "step_time"


#: Peak-memory metrics, the CUDA allocator's first where a cell has both.
MEMORY_METRICS = (MetricName.CUDA_PEAK_BYTES, MetricName.PEAK_RSS_BYTES)

#: The smallest peak-memory difference each meter resolves, in bytes. The resident set
#: (``VmHWM``) moves in pages and in malloc's arena steps, and a warmed-up worker's
#: baseline already holds what a small cell needs: readings under 64 KiB, 0 B included,
#: say only "too small to see". The CUDA allocator counts its 512-byte blocks exactly.
MEMORY_RESOLUTION = {
    MetricName.PEAK_RSS_BYTES: 64 * 1024,
    MetricName.CUDA_PEAK_BYTES: 512,
    MetricName.JAX_GPU_PEAK_BYTES: 512,
    MetricName.SAVED_TENSOR_BYTES: 1,
}


def resolution(metric: str) -> float:
    """The meter's resolution for a memory metric (1 byte where none is known)."""
    return MEMORY_RESOLUTION.get(metric, 1)
