"""The runner: statuses of cells that fail, memory through the whole pipeline, a user's
problem from a file, tidy rows, kill and resume; and the input checks (no worker needed)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch
from helpers import wait_until

import deqbench
from deqbench.harness.options import BadInput
from deqbench.harness.oracle import CACHE_ENV
from deqbench.harness.results import RunFolder
from deqbench.harness.results import rows as results
from deqbench.harness.run import make_settings, split_size

FIXTURES = Path(__file__).parent / "fixtures"
FAULTY = FIXTURES / "faulty_strategies.py"
USER_PROBLEM = f"{FIXTURES / 'user_problem.py'}:ShiftedTanh"
MB = 1_000_000


pytestmark = pytest.mark.usefixtures("isolated_registries")


@pytest.fixture(scope="module", autouse=True)
def oracle_cache(tmp_path_factory):
    """A private oracle cache, shared by this module's runs (and their subprocesses)."""
    previous = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("oracle-cache"))
    yield
    if previous is None:
        del os.environ[CACHE_ENV]
    else:
        os.environ[CACHE_ENV] = previous


def statuses(rows) -> dict[str, str]:
    return results.cell_statuses(rows).set_index("cell")["status"].to_dict()


def metric(rows, name: str, output: str = ""):
    """strategy -> value of a cell-level metric."""
    selected = rows[(rows["metric"] == name) & (rows["output"] == output)]
    return selected.set_index("strategy")["value"]


# ------------------------------------------------------------------- statuses
def test_a_cell_that_raises_diverges_times_out_or_crashes_is_recorded_and_the_others_complete():
    names = ["Raises", "Diverges", "Sleeps", "Crashes"]
    rows = deqbench.run(
        [f"{FAULTY}:{n}" for n in names] + ["analytic"], "tanh", "forward", quick=True, timeout=5
    )
    cells = results.cell_statuses(rows).set_index("strategy")
    assert cells["status"].to_dict() == {
        "test-raises": "error",
        "test-diverges": "diverged",
        "test-sleeps": "timeout",
        "test-crashes": "error",
        "analytic": "ok",
    }
    assert "deliberate failure" in cells.loc["test-raises", "message"]
    assert "did not converge" in cells.loc["test-diverges", "message"]
    assert "SIGSEGV" in cells.loc["test-crashes", "message"]
    assert "--timeout 5" in cells.loc["test-sleeps", "message"]
    failed = set(results.failed_cells(rows)["strategy"])
    assert failed == {"test-raises", "test-diverges", "test-crashes"}  # a timeout is not a wrong answer
    assert set(results.unverified_cells(rows)["strategy"]) == {"test-sleeps"}  # but it fails the run


def test_a_query_holding_200mb_is_reported_at_200mb():
    rows = deqbench.run(f"{FAULTY}:Allocates200MB", "tanh", "forward", quick=True)
    assert set(statuses(rows).values()) == {"ok"}
    assert metric(rows, "peak_rss_bytes").item() == pytest.approx(200 * MB, rel=0.1)


def test_a_cell_past_the_memory_cap_is_stopped_as_oom():
    rows = deqbench.run(f"{FAULTY}:Hogs", "tanh", "forward", quick=True, max_memory="300M")
    cell = results.cell_statuses(rows).iloc[0]
    assert (cell["status"], cell["message"]) == (
        "oom",
        "resident memory above --max-memory 0.293 GiB; worker killed",
    )


def test_a_user_problem_from_a_file_runs_end_to_end():
    rows = deqbench.run("analytic,unrolled", USER_PROBLEM, "forward,jvp,pinn_grad,pinn2_grad", quick=True)
    assert set(rows["problem"]) == {"user-shifted-tanh"}
    assert set(rows["size"]) == {"m=4,n=2,batch=3"}
    by_query = results.cell_statuses(rows).groupby("query")["status"].agg(set).to_dict()
    assert by_query == {"forward": {"ok"}, "jvp": {"ok"}, "pinn_grad": {"ok"}, "pinn2_grad": {"unsupported"}}


# ----------------------------------------------------------------------- rows
CELL_METRICS = {
    "relative_error",
    "oracle_error_estimate",
    "time_median",
    "time_iqr",
    "peak_rss_bytes",
    "saved_tensor_bytes",
    "forward_iterations",
    "backward_iterations",
    "forward_nfev",
    "backward_nfev",
    "forward_converged",
    "backward_converged",
    "warmup",
    "repeats",
    "cell_wall_time",
}


def test_rows_are_tidy_one_per_cell_and_metric_with_the_run_metadata():
    rows = deqbench.run("analytic", "tanh", "forward,hessian", quick=True, tol=1e-7)
    assert list(rows.columns) == results.COLUMNS
    assert not rows.duplicated(["cell", "metric", "output"]).any()
    forward = rows[rows["cell"] == "analytic/tanh/forward"]
    assert set(forward["metric"]) >= CELL_METRICS
    errors = forward[forward["metric"] == "relative_error"]
    assert set(errors["output"]) == {"", "z_star", "output"}  # each output, and the max
    assert errors["value"].max() == errors.loc[errors["output"] == "", "value"].item() < 1e-7
    assert metric(forward, "repeats").item() == 3 and metric(forward, "warmup").item() == 1
    first = forward.iloc[0]
    assert (first["preset"], first["size"], first["dtype"], first["device"]) == (
        "quick",
        "m=8,n=3,batch=4,rho=0.8",
        "float64",
        "cpu",
    )
    assert first["torch_version"] == torch.__version__ and first["deqbench_version"] == deqbench.__version__
    assert first["git_commit"] and first["host"] and first["device_name"] and first["timestamp"]
    assert first["threads"] >= 1 and first["tol"] == 1e-7 and first["oracle_method"]


# ------------------------------------------------------------- kill and resume
KILL_MATRIX = {"strategies": "analytic,unrolled", "problems": "tanh", "queries": "forward,jvp,grad,pinn_grad"}


def kill_tree(pid: int) -> None:
    """SIGKILL to the parent first (so it cannot record its worker's death), then the rest."""
    parent = psutil.Process(pid)
    descendants = parent.children(recursive=True)
    parent.kill()
    for process in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def test_a_killed_run_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "deqbench.harness.cli.main", "run", "--quick", "--repeats", "1"]
    command += ["-s", KILL_MATRIX["strategies"], "-p", KILL_MATRIX["problems"], "-q", KILL_MATRIX["queries"]]
    process = subprocess.Popen(
        [*command, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until(lambda: any((out / "cells").glob("*.parquet")))
    finally:
        kill_tree(process.pid)
        process.wait()
    finished = RunFolder(out).finished()
    assert 0 < len(finished) < 8, "the kill should land half way"

    resumed = deqbench.run(resume=out)
    uninterrupted = deqbench.run(**KILL_MATRIX, quick=True, repeats=1, out=tmp_path / "uninterrupted")
    key = ["cell", "metric", "output"]
    assert not resumed.duplicated(key).any()
    assert sorted(map(tuple, resumed[key].values)) == sorted(map(tuple, uninterrupted[key].values))
    assert statuses(resumed) == statuses(uninterrupted) == {cell: "ok" for cell in statuses(resumed)}
    assert set(resumed["run_id"]) == {RunFolder(out).load()["run_id"]}
    assert not list((out / "cells").glob("*.tmp"))


# --------------------------------------------------------------- input checks
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, (None, {})),
        ("quick", ("quick", {})),
        ("m=256,batch=128", (None, {"m": "256", "batch": "128"})),
        ("large, batch=8", ("large", {"batch": "8"})),
    ],
)
def test_split_size(text, expected):
    assert split_size(text) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategies": "nope"}, "unknown strategy 'nope'; known: "),
        ({"problems": "tanh,nope"}, "unknown problem 'nope'; known: "),
        ({"queries": "jvp,nope"}, "unknown query 'nope'; known: forward"),
        ({"strategies": ""}, "--strategy is empty"),
        ({"size": "m="}, "malformed --size item 'm='"),
        ({"size": "quick,large"}, "at most one preset"),
        ({"size": "huge"}, "no size preset 'huge'; known: quick, default"),
        ({"size": "m=abc"}, "--size:"),
        ({"size": "q=3"}, "no selected problem has a knob 'q'"),
        ({"dtype": "float16"}, "accepted: float64, float32"),
        ({"device": "tpu"}, "accepted: cpu, cuda"),
        ({"repeats": 0}, "--repeats 0: accepted: an integer >= 1"),
        ({"timeout": -1}, "--timeout -1: accepted: seconds, finite and > 0"),
        ({"problems": f"{FIXTURES / 'user_problem.py'}:NotAProblem"}, "is not a deqbench Problem subclass"),
        ({"problems": f"{FIXTURES / 'missing.py'}:Foo"}, "not found"),
    ],
)
def test_bad_settings_raise_one_line_naming_what_is_accepted(kwargs, message):
    with pytest.raises(BadInput, match=None) as raised:
        make_settings(**kwargs)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


ONE_CELL = {"strategies": "analytic", "problems": "tanh", "queries": "forward"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8G", 8 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", int(1.5 * 2**30)), ("1000", 1000), ("none", 0)],
)
def test_max_memory_accepts_byte_counts_with_units(text, expected):
    assert make_settings(**ONE_CELL, max_memory=text).max_memory == expected


def test_max_memory_rejects_what_is_not_a_size():
    with pytest.raises(BadInput, match="malformed --max-memory 'lots'"):
        make_settings(**ONE_CELL, max_memory="lots")


def test_a_size_knob_applies_to_the_problems_that_have_it():
    settings = make_settings(**{**ONE_CELL, "problems": "tanh,vanderpol"}, size="n=5", quick=True)
    assert settings.overrides == {"n": "5"}


def test_float32_gets_tolerances_it_can_reach():
    settings = make_settings(**ONE_CELL, dtype="float32")
    solver = settings.solver_settings()
    assert (solver["f_tol"], solver["b_tol"], settings.verify_tol) == (1e-5, 1e-5, 1e-2)
    assert make_settings(**ONE_CELL).verify_tol == 1e-6


# ----------------------------------------------------------------------- sweeps
def test_a_sweep_runs_the_matrix_at_each_size_into_one_folder(tmp_path):
    rows = deqbench.run(
        "analytic",
        "tanh,vanderpol",
        "forward",
        quick=True,
        repeats=1,
        sweep="m=4,6;batch=2,3",
        out=tmp_path / "s",
    )
    cells = results.cell_statuses(rows)
    assert len(cells) == 8 and set(cells["status"]) == {"ok"}
    sizes = set(rows.loc[rows["problem"] == "tanh", "size"])
    assert sizes == {f"m={m},n=3,batch={b},rho=0.8" for m in (4, 6) for b in (2, 3)}
    assert "analytic/tanh/forward@m=6,batch=3" in set(cells["cell"])
    assert RunFolder(tmp_path / "s").load()["settings"]["sweep"] == "m=4,6;batch=2,3"
