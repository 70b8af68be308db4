"""Processes and time: --timeout covers the strategy's cost and --oracle-timeout the
oracles', kills from outside are recorded as such, stopped claimed-exact cells fail the run,
no process or scratch file outlives its parent, and one results folder has one writer at a
time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from helpers import wait_until

import deqbench
from deqbench.harness.cli.main import main
from deqbench.harness.oracle import CACHE_ENV
from deqbench.harness.results import rows as results
from deqbench.harness.worker import server

FIXTURES = Path(__file__).parent / "fixtures"
FAULTY = FIXTURES / "faulty_strategies.py"
HANGING = FIXTURES / "hanging_problem.py"

pytestmark = pytest.mark.usefixtures("isolated_registries")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "oracle-cache"))


def cells(rows) -> dict[str, tuple[str, str]]:
    table = results.cell_statuses(rows).set_index("cell")
    return {cell: (row["status"], row["message"]) for cell, row in table.iterrows()}


# --------------------------------------------------------------------- timeout
@pytest.mark.parametrize(
    ("problem", "said"),
    [("HangsInBuild", "--timeout 4 s"), ("HangsInOracle", "oracle: no answer within --oracle-timeout 4 s")],
)
def test_timeout_covers_building_the_problem_and_by_default_the_oracle(problem, said):
    start = time.monotonic()
    rows = deqbench.run("analytic", f"{HANGING}:{problem}", "forward,jvp", quick=True, timeout=4)
    assert time.monotonic() - start < 60
    for status, message in cells(rows).values():
        assert status == "timeout" and said in message
    assert len(results.unverified_cells(rows)) == 2


def test_the_oracle_has_its_own_budget_apart_from_the_strategys_timeout():
    """An oracle slower than the strategy's whole --timeout still grades the cell when
    --oracle-timeout allows it: its cost is not charged to the strategy."""
    rows = deqbench.run(
        "analytic", f"{HANGING}:SlowOracle", "forward", quick=True, timeout=5, oracle_timeout=120
    )
    ((status, message),) = cells(rows).values()
    assert status == "ok", message
    with pytest.raises(ValueError, match="--oracle-timeout 0: accepted: seconds"):
        deqbench.run("analytic", "tanh", "forward", quick=True, oracle_timeout=0)


# ------------------------------------------------------------------------ kills
def test_a_worker_killed_by_a_signal_from_outside_is_recorded_as_killed():
    rows = deqbench.run(f"{FAULTY}:KillsItself", "tanh", "forward", quick=True)
    ((status, message),) = cells(rows).values()
    assert status == "killed" and "SIGKILL" in message and "outside deqbench" in message


def test_a_cell_killed_by_another_process_mid_run_is_recorded_and_the_run_goes_on():
    outcome = {}

    def run_in_thread():
        outcome["server"] = server.worker_server()
        outcome["rows"] = deqbench.run(f"{FAULTY}:Sleeps,analytic", "tanh", "forward", quick=True)

    thread = threading.Thread(target=run_in_thread)
    thread.start()
    wait_until(lambda: "server" in outcome and psutil.Process(outcome["server"].pid).children())
    (cell_process,) = psutil.Process(outcome["server"].pid).children()
    cell_process.send_signal(signal.SIGTERM)
    thread.join(120)
    statuses = {cell: status for cell, (status, _) in cells(outcome["rows"]).items()}
    assert statuses == {"test-sleeps/tanh/forward": "killed", "analytic/tanh/forward": "ok"}


def run_cli(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_a_claimed_exact_cell_that_runs_out_of_memory_fails_the_run(tmp_path):
    result = run_cli("run", "-s", "analytic", "-p", "tanh", "-q", "forward", "--quick", "--max-memory", "1",
                     "-o", tmp_path / "run")  # fmt: skip
    assert "analytic/tanh/forward: oom" in result.output
    assert result.exit_code == 1, result.output


# ---------------------------------------------------------------------- orphans
def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "deqbench.harness.cli.main", *map(str, args)]


def descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def test_when_the_worker_server_dies_its_cell_dies_too(tmp_path):
    process = subprocess.Popen(
        cli_command(
            "run", "-s", f"{FAULTY}:Sleeps", "-p", "tanh", "-q", "forward", "--quick", "-o", tmp_path / "r"
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: len(descendants(process.pid)) >= 2)  # the server and its cell
        worker_server = psutil.Process(process.pid).children()[0]
        (cell,) = worker_server.children()
        worker_server.kill()
        wait_until(lambda: not cell.is_running() or cell.status() == psutil.STATUS_ZOMBIE, timeout=10)
        process.wait(60)  # the run goes on: the cell is recorded, the run ends
    finally:
        process.kill()
    rows = results.cell_statuses(deqbench.harness.results.run_folder.RunFolder(tmp_path / "r").read())
    assert rows["status"].tolist() == ["killed"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_parent_leaves_no_process_and_no_scratch_files(tmp_path, sig):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen(
        cli_command(
            "run", "-s", f"{FAULTY}:Sleeps", "-p", "tanh", "-q", "forward", "--quick", "-o", tmp_path / "r"
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    wait_until(lambda: len(descendants(process.pid)) >= 2)
    children = descendants(process.pid)
    process.send_signal(sig)
    process.wait(30)
    wait_until(lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children), 10)
    # (torch keeps a compile cache of its own there; deqbench leaves nothing)
    left = [p for p in scratch.rglob("*") if "deqbench" in p.name or p.suffix in (".pickle", ".tmp")]
    assert left == []


# ------------------------------------------------------------------------- locks
def test_a_second_writer_of_a_results_folder_gets_one_line_and_exit_2(tmp_path):
    out = tmp_path / "r"
    first = subprocess.Popen(
        cli_command("run", "-s", f"{FAULTY}:Sleeps", "-p", "tanh", "-q", "forward", "--quick", "-o", out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: len(descendants(first.pid)) >= 2)
        second = subprocess.run(
            cli_command("run", "--resume", out, "--trust"), capture_output=True, text=True, timeout=120
        )
    finally:
        for child in descendants(first.pid):
            child.kill()
        first.kill()
        first.wait()
    assert second.returncode == 2, second.stderr
    notice, *lines = [line for line in second.stderr.splitlines() if line]  # first: what it imports
    assert notice == f"--resume imports {FAULTY} (outside the run folder)"
    assert len(lines) == 1 and "is being written by deqbench (pid" in lines[0], second.stderr
    assert not list((out / "cells").glob("*.parquet"))  # the second writer computed nothing


MANY_CPUS = hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) > 1


@pytest.mark.skipif(not MANY_CPUS, reason="needs a Linux process that may use more than one CPU")
@pytest.mark.parametrize(
    ("threads", "device", "cpus_kept"),
    [(1, "cpu", 1), (1, "cuda", None), (2, "cpu", None), (None, "cpu", None)],
)
def test_one_thread_keeps_a_measuring_process_to_one_cpu(threads, device, cpus_kept):
    """XLA's own thread pool ignores its one-thread flag, so one thread means one CPU; other
    counts, and cells on a GPU (whose launching threads need the host), leave the process
    every CPU it had (a fresh process: this one keeps its own)."""
    code = (
        "import os; from deqbench.harness.worker.measure import on_cpu, use_threads; "
        f"use_threads({threads}, one_cpu=on_cpu({device!r})); print(len(os.sched_getaffinity(0)))"
    )
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(printed.stdout) == (cpus_kept or len(os.sched_getaffinity(0)))


@pytest.mark.skipif(not MANY_CPUS, reason="needs a Linux process that may use more than one CPU")
def test_one_thread_is_one_blas_thread_in_libraries_loaded_before():
    """scipy's OpenBLAS (jaxlib's LAPACK) loaded first, as the worker server preloads it:
    its pool still ends at one thread, or its threads spin-wait on each other on one CPU."""
    code = (
        "import scipy.linalg, threadpoolctl; from deqbench.harness.worker.measure import use_threads; "
        "use_threads(1); "
        "print(max(i['num_threads'] for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas'))"
    )
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(printed.stdout) == 1
