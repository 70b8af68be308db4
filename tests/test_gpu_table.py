"""The GPU speed table's script (``make perf-gpu``) works end to end: a dry run on the CPU at a
tiny size, a JAX cell's memory from a child process, and a clear refusal without CUDA."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from deqbench.harness.bench import gpu_table

TINY = ["--device", "cpu", "--sizes", "8", "--batch", "4", "--repeats", "1"]


@pytest.fixture
def xla_settings_kept(monkeypatch):
    """The script sets XLA's settings, as the speed harness does; the test process gets its
    own back (its threads and CPUs: conftest's ``threads_restored``)."""
    for name in ("XLA_FLAGS", "XLA_PYTHON_CLIENT_PREALLOCATE"):
        monkeypatch.setenv(name, os.environ.get(name, ""))  # restored (or removed) afterwards


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: the script would run")
def test_without_cuda_it_says_so_in_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as stopped:
        gpu_table.main([])
    assert stopped.value.code == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "CUDA" in message and "--device cpu" in message


def test_a_cpu_dry_run_gives_every_row_in_both_dtypes(xla_settings_kept, capsys):
    rows = gpu_table.main([*TINY, "-s", "analytic,unrolled"])
    cells = {(r["dtype"], r["query"], r["strategy"]) for r in rows}
    for dtype in ("float32", "float64"):
        assert (dtype, "forward solve", "-") in cells
        for query in ("grad", "pinn_grad"):
            assert {(dtype, query, "analytic"), (dtype, query, "unrolled")} <= cells
    assert all(r["median_ms"] > 0 and r["peak_MB"] >= 0 for r in rows)
    assert all(r["diff_vs_analytic"] < 1e-3 for r in rows if r["strategy"] != "-")
    assert "| 8 | float64 | pinn_grad | unrolled |" in capsys.readouterr().out


def test_a_jax_cells_memory_comes_from_a_child_process():
    pytest.importorskip("jax")
    command = [sys.executable, "-m", "deqbench.harness.bench.gpu_table", *TINY, "--dtypes", "float64"]
    command += ["--memory-of", "jax-analytic", "grad"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    peak = json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"]
    assert math.isfinite(peak) and peak >= 0
