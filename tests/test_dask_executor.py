"""--executor dask: the same cells and verdicts as a local run, lost workers recorded, and
resume across executors. One test starts deqbench's own LocalCluster (--workers 2); the
others share a LocalCluster of two worker processes through --scheduler, which saves a
cluster start and the workers' worker servers per test.

Reads internals by their path: run.dask_executor's ALLOWED_FAILURES (the setting it tests).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import deqbench
from deqbench.harness.oracle import CACHE_ENV
from deqbench.harness.results import RunFolder
from deqbench.harness.results import rows as results

pytest.importorskip("distributed")

FAULTY = Path(__file__).parent / "fixtures" / "faulty_strategies.py"
MATRIX = {"strategies": "analytic,implicit-vjp", "problems": "tanh", "queries": "forward,jvp2,grad"}
pytestmark = pytest.mark.usefixtures("isolated_registries")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.getbasetemp() / "dask-oracle-cache")


@pytest.fixture(autouse=True)
def private_cache(cache_dir, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, cache_dir)


@pytest.fixture(scope="module")
def scheduler(cache_dir):
    """A shared LocalCluster, configured as deqbench configures its own."""
    import dask
    from distributed import LocalCluster

    from deqbench.harness.run.dask_executor import ALLOWED_FAILURES

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, cache_dir)  # the workers' environment is the one they start with
        with (
            dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES}),
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
        ):
            yield cluster.scheduler_address


def statuses(rows) -> dict[str, str]:
    return results.cell_statuses(rows).set_index("cell")["status"].to_dict()


def test_a_dask_run_gives_the_cells_and_verdicts_of_a_local_run(tmp_path):
    local = deqbench.run(**MATRIX, quick=True, repeats=1)
    on_dask = deqbench.run(**MATRIX, quick=True, repeats=1, executor="dask", workers=2, out=tmp_path / "d")
    assert statuses(on_dask) == statuses(local)
    assert set(statuses(on_dask).values()) == {"ok", "wrong"}  # implicit-vjp's jvp2, not claimed
    key = ["cell", "metric", "output"]
    assert sorted(map(tuple, on_dask[key].values)) == sorted(map(tuple, local[key].values))
    errors = on_dask[(on_dask.metric == "relative_error") & (on_dask.output == "")].set_index("cell")["value"]
    local_errors = local[(local.metric == "relative_error") & (local.output == "")].set_index("cell")["value"]
    assert errors.sort_index().tolist() == pytest.approx(
        local_errors.sort_index().tolist(), rel=1e-6, abs=1e-12
    )


def test_a_dask_run_whose_parent_is_killed_resumes_with_the_local_executor(tmp_path):
    out = tmp_path / "d"
    command = [
        sys.executable,
        "-m",
        "deqbench.harness.cli.main",
        "run",
        "--quick",
        "--repeats",
        "1",
        "--executor",
        "dask",
    ]
    command += ["--workers", "2", "-s", MATRIX["strategies"], "-p", "tanh", "-q", "forward,jvp,jvp2,grad"]
    process = subprocess.Popen(
        [*command, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 240
        while not list((out / "cells").glob("*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        for child in psutil.Process(process.pid).children(recursive=True):
            child.kill()
        process.kill()
        process.wait()
    finished = RunFolder(out).finished()
    assert 0 < len(finished) < 8
    resumed = deqbench.run(resume=out)
    assert len(statuses(resumed)) == 8 and not resumed.duplicated(["cell", "metric", "output"]).any()
    assert set(statuses(resumed).values()) == {"ok", "wrong"}


def test_a_dask_worker_that_dies_is_retried_once_then_recorded_and_the_run_completes(tmp_path, scheduler):
    rows = deqbench.run(
        f"{FAULTY}:KillsItsDaskWorker,analytic", "tanh", "forward,jvp", quick=True, repeats=1,
        executor="dask", scheduler=scheduler, out=tmp_path / "d",
    )  # fmt: skip
    cells = results.cell_statuses(rows).set_index("cell")
    assert len(cells) == 4  # every cell recorded: the run completed
    lost = cells.loc["test-kills-its-dask-worker/tanh/forward"]
    assert lost["status"] == "killed" and "dask lost the cell" in lost["message"], lost["message"]
    # (a cell queued on a worker when it died is charged with that death too, as Dask does:
    # the analytic cells are ok, or killed with the same message, never silently missing)
    for cell in ("analytic/tanh/forward", "analytic/tanh/jvp"):
        assert cells.loc[cell, "status"] in ("ok", "killed"), cells.loc[cell, "message"]
