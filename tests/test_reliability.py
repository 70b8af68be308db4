"""Defects found by probing deqbench from outside, one test each, named after the defect:
folders that resume, names that never collide, tolerances that follow each other, names
and messages that reach a terminal harmlessly, a cache nobody else can write answers into,
limits checked before anything is written, training that diverges, and resumes that say
what code they import.

Tests internals by their path where a defect lives inside (the runner, the matrix, safe
names, training's loop and final table).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import deqbench
from deqbench.harness.cli.main import main
from deqbench.harness.options import BadInput
from deqbench.harness.oracle import CACHE_ENV, OracleCache
from deqbench.harness.references import file_digest
from deqbench.harness.results import RunFolder, life_cycle
from deqbench.harness.results import rows as results
from deqbench.harness.results.rows import Metric, legacy_safe_name, safe_name
from deqbench.harness.run import runner
from deqbench.harness.run.matrix import plan
from deqbench.harness.run.settings import ToleranceWarning, make_settings

FIXTURES = Path(__file__).parent / "fixtures"
USER_PROBLEM_FILE = FIXTURES / "user_problem.py"


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "reliability-oracle-cache"))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def statuses(rows) -> dict[str, str]:
    return results.cell_statuses(rows).set_index("cell")["status"].to_dict()


# ---------------------------------------------------------------- run folders
def test_a_run_folder_without_logs_resumes_every_cell(tmp_path):
    out = tmp_path / "run"
    deqbench.run("analytic", "tanh", "forward,jvp", quick=True, repeats=1, out=out)
    shutil.rmtree(out / "logs")
    (out / "cells" / "analytic__tanh__jvp.parquet").unlink()

    resumed = deqbench.run(resume=out)
    assert statuses(resumed) == {"analytic/tanh/forward": "ok", "analytic/tanh/jvp": "ok"}


def fake_cell_rows(cell_id: str, run_id: str, **identity) -> pd.DataFrame:
    """A finished cell's rows as a run writes them (without running it)."""
    strategy, *problem, query = cell_id.split("@")[0].split("/")
    base = {
        "run_id": run_id,
        "cell": cell_id,
        "strategy": strategy,
        "backend": "torch",
        "problem": "/".join(problem),
        "query": query,
        "size": "m=4",
        "device": "cpu",
        "dtype": "float64",
        "status": "ok",
        "expected_exact": True,
        "message": "",
        "f_max_iter": 500,
        "b_max_iter": 500,
        "seed": 0,
        "threads": 1,
        **identity,
    }
    return results.cell_rows(base, [Metric("relative_error", 1e-12, "rel"), Metric("time_median", 1e-3, "s")])


def fake_run(path: Path, cell_ids: list[str]) -> RunFolder:
    folder = RunFolder(path)
    folder.create({"run_id": "r1", "created": "", "settings": {}, "cells": cell_ids})
    return folder


def test_two_problem_names_that_sanitise_alike_keep_their_own_cell_files(tmp_path):
    ids = [
        "analytic/r3:col/forward",
        "analytic/r3_col/forward",
        "a/b__c/d",
        "a__b/c/d",
        "a/" + "x" * 300 + "/q",
    ]
    assert len({safe_name(cell) for cell in ids}) == len(ids)
    assert all(len(safe_name(cell)) < 200 for cell in ids)
    folder = fake_run(tmp_path / "run", ids)
    for cell in ids:
        folder.write_cell(cell, fake_cell_rows(cell, "r1"))
    assert folder.finished() == set(ids)
    assert safe_name("analytic/tanh/jvp@m=8,batch=4") == "analytic__tanh__jvp@m=8,batch=4"  # readable


def test_a_run_folder_written_with_the_older_cell_names_is_still_read(tmp_path):
    ids = ["analytic/tanh/jvp@m=8", "analytic/r3:col/forward"]
    folder = fake_run(tmp_path / "run", ids)
    for cell in ids:
        rows = fake_cell_rows(cell, "r1").to_parquet(index=False)
        (folder.cells_dir / f"{legacy_safe_name(cell)}.parquet").write_bytes(rows)
    assert folder.finished() == set(ids)


def test_sweep_values_that_name_one_size_plan_one_cell():
    for sweep in ("m=8,08,+8", "m=8, 8 ,8"):
        settings = make_settings(
            strategies="analytic", problems="tanh", queries="forward", quick=True, sweep=sweep
        )
        assert [p.cell.id for p in plan(settings)] == ["analytic/tanh/forward@m=8"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"sweep": ";;"}, "malformed --sweep ';;'"),
        ({"sweep": "m=4,8", "size": "m=16"}, "--sweep and --size both set 'm'"),
        ({"sweep": "m=" + ",".join(map(str, range(1, 201))) + ";batch=" + ",".join(map(str, range(1, 201)))},
         "the run plans 40,000 cells, more than --max-cells 10,000"),
    ],
)  # fmt: skip
def test_a_sweep_that_is_empty_overrides_size_or_is_too_large_is_refused(given, message):
    start = time.perf_counter()
    with pytest.raises(BadInput, match=message.replace("(", r"\(").replace("+", r"\+")):
        make_settings(strategies="analytic", problems="tanh", queries="forward", **given)
    assert time.perf_counter() - start < 5


def test_a_sweep_of_a_billion_cells_is_refused_at_once_and_max_cells_allows_a_large_one():
    values = ",".join(map(str, range(1, 1001)))
    start = time.perf_counter()
    with pytest.raises(BadInput, match="1,000,000,000 cells"):
        make_settings(
            strategies="analytic",
            problems="tanh",
            queries="forward",
            sweep=f"m={values};batch={values};n={values}",
        )
    assert time.perf_counter() - start < 5
    settings = make_settings(
        strategies="analytic", problems="tanh", queries="forward", sweep="m=1,2,3;batch=1,2", max_cells=6
    )
    assert len(plan(settings)) == 6


# ----------------------------------------------------------------- tolerances
def test_tolerances_follow_each_other():
    assert make_settings().verify_tol == 1e-6
    assert make_settings(dtype="float32").verify_tol == 1e-2
    assert make_settings(f_tol=1e-6).verify_tol == pytest.approx(1e-4)  # unrolled jvp2: 1.85e-6
    assert make_settings(f_tol=1e-4).verify_tol == pytest.approx(1e-2)  # planted forward: 1.06e-5
    assert make_settings(tol=1e-3, b_tol=1e-4).verify_tol == 1e-3
    refused = {
        "--tol 1e-09: float32 answers cannot be that exact": {"dtype": "float32", "tol": 1e-9},
        "--tol 1e-06 is below the solver tolerance 0.0001": {"f_tol": 1e-4, "tol": 1e-6},
    }
    for message, given in refused.items():
        with pytest.raises(BadInput, match=message):
            make_settings(**given)
    unreachable = {  # warned: a run may fix the iteration count by an unreachable tolerance
        "--f-tol 1e-12: a float32 solve cannot reach it": {"dtype": "float32", "f_tol": 1e-12},
        "--b-tol 1e-17: a float64 solve cannot reach it": {"b_tol": 1e-17},
    }
    for message, given in unreachable.items():
        with pytest.warns(ToleranceWarning, match=message):
            make_settings(**given)


def test_an_unreachable_solver_tolerance_is_warned_of_in_one_line(tmp_path):
    result = invoke(
        "run", "--dtype", "float32", "--f-tol", "1e-12", "--max-cells", "1", "-o", tmp_path / "run"
    )
    assert result.exit_code == 2 and not (tmp_path / "run").exists()  # refused for --max-cells
    assert result.output.startswith("deqbench: warning: --f-tol 1e-12: a float32 solve cannot reach it")
    assert result.output.count("\n") == 2 and "deqbench: error: the run plans" in result.output


def test_an_impossible_tolerance_is_one_line_and_exit_2(tmp_path):
    result = invoke("run", "--dtype", "float32", "--tol", "1e-9", "--quick", "-o", tmp_path / "run")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--tol" in result.output
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------- names on a terminal
NASTY = {
    "markup": "p[/x]",
    "title and clear screen": "p\x1b]0;owned\x07\x1b[2J",
    "link": "\x1b]8;;http://evil/\x1b\\click\x1b]8;;\x1b\\",
}


@pytest.mark.parametrize("kind", list(NASTY))
def test_markup_and_escape_sequences_from_result_files_are_shown_harmlessly(tmp_path, kind):
    nasty = NASTY[kind]
    cells = [f"analytic/{nasty}/forward", "analytic/tanh/jvp"]
    folder = fake_run(tmp_path / "run", cells)
    folder.write_cell(cells[0], fake_cell_rows(cells[0], "r1", status="error", message=f"raised {nasty}"))
    result = invoke("show", folder.path)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    visible = nasty.replace("\x1b", "\\x1b").replace("\x07", "\\x07")
    assert f"raised {visible}" in " ".join(result.output.split())
    assert "1 of 2 cells finished" in result.output


def test_show_is_fast_on_2000_cells(tmp_path):
    cells = [f"analytic/p{i // 4}/q{i % 4}" for i in range(2000)]
    folder = fake_run(tmp_path / "run", cells)
    table = pa.Table.from_pandas(
        pd.concat([fake_cell_rows(cell, "r1") for cell in cells]), preserve_index=False
    )
    for index, cell in enumerate(cells):  # pyarrow straight: pandas would take a minute here
        pq.write_table(table.slice(2 * index, 2), folder.cell_path(cell))
    start = time.process_time()  # CPU time: the machine may be busy
    result = invoke("show", folder.path)
    seconds = time.process_time() - start
    assert result.exit_code == 0, result.output
    assert "2000 cells: 2000 ok" in result.output
    assert seconds < 10, f"show took {seconds:.1f} CPU seconds on 2,000 cells"


# ---------------------------------------------------------------------- cache
def test_a_fifo_named_like_an_entry_never_blocks(tmp_path):
    tanh = deqbench.get_problem("tanh", "quick")
    cache = OracleCache(tmp_path)
    path = cache.entry_path(tanh, "forward")
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert cache.info()["entries"] == 0  # a FIFO is no entry
    start = time.perf_counter()
    with pytest.warns(UserWarning, match="not a regular file"):
        answer = cache.answer(tanh, "forward")
    assert not answer.cached and time.perf_counter() - start < 30
    assert OracleCache(tmp_path).answer(tanh, "forward").cached  # the FIFO replaced by an entry


def test_cache_info_reads_headers_only(tmp_path):
    tanh = deqbench.get_problem("tanh", "quick")
    cache = OracleCache(tmp_path)
    cache.answer(tanh, "forward")
    entry = cache.entry_path(tanh, "forward")
    for index in range(3):  # three sparse 1 GiB entries: reading them would take many seconds
        big = entry.with_name(f"jvp{index}-{'0' * 64}.pt")
        big.write_bytes(entry.read_bytes()[:200])
        os.truncate(big, 2**30)
    start = time.perf_counter()
    result = invoke("cache", "info", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - start < 5
    assert "entries:    4" in result.output and "unreadable: 0" in result.output


def test_a_cache_dir_that_is_a_file_is_a_clear_error(tmp_path, monkeypatch):
    a_file = tmp_path / "cache"
    a_file.write_text("not a folder")
    monkeypatch.setenv(CACHE_ENV, str(a_file))
    for command in (
        ["cache", "info"],
        ["cache", "clear"],
        ["run", "-s", "analytic", "-p", "tanh", "--quick"],
    ):
        result = invoke(*command, "-o", tmp_path / "run") if command[0] == "run" else invoke(*command)
        assert result.exit_code == 2, (command, result.output)
        assert f"{a_file} is not a folder" in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ scheduler
@pytest.mark.parametrize("address", ["not a url", "tcp://127.0.0.1:1"])
def test_a_bad_scheduler_is_one_line_and_nothing_is_written(tmp_path, address):
    out = tmp_path / "run"
    result = invoke("run", "-s", "analytic", "-p", "tanh", "-q", "forward", "--quick", "--executor", "dask",
                    "--scheduler", address, "-o", out)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and f"--scheduler {address}: cannot connect" in result.output
    assert not out.exists()


# -------------------------------------------------------------------- resumes
def copy_renamed(source: Path, target: Path) -> None:
    """A copy of a problem file whose problem has another name (two files, two registrations)."""
    target.write_text(source.read_text().replace("user-shifted-tanh", "user-shifted-tanh-copy"))


def new_user_run(out: Path, problem_file: Path) -> None:
    settings = make_settings(
        strategies="analytic", problems=f"{problem_file}:ShiftedTanh", queries="forward", quick=True
    )
    runner.new_run(settings, out)


def test_resume_names_the_files_it_imports_and_needs_trust_for_outside_or_changed_ones(
    tmp_path, isolated_registries
):
    problem_file = tmp_path / "user_problem.py"
    shutil.copy(USER_PROBLEM_FILE, problem_file)
    out = tmp_path / "run"
    new_user_run(out, problem_file)
    assert json.loads((out / "run.json").read_text())["files"] == {
        str(problem_file): file_digest(problem_file)
    }

    told = []
    with pytest.raises(life_cycle.UntrustedFiles, match=f"import code from {problem_file}"):
        runner.resume_settings(out, notify=told.append)
    assert told == [f"--resume imports {problem_file} (outside the run folder)"]
    runner.resume_settings(out, trust=True)

    result = invoke("run", "--resume", out)
    assert result.exit_code == 2 and "--trust" in result.output
    assert f"--resume imports {problem_file}" in result.output

    inside = out / "user_problem.py"  # a file inside the folder, edited since the run started
    copy_renamed(USER_PROBLEM_FILE, inside)
    run_file = out / "run.json"
    run = json.loads(run_file.read_text())
    run["settings"]["problems"] = [f"{inside}:ShiftedTanh"]
    run["files"] = {str(inside): file_digest(inside)}
    run_file.write_text(json.dumps(run))
    runner.resume_settings(out)  # inside and unchanged: no trust needed
    inside.write_text(inside.read_text() + "\n# edited\n")
    with pytest.raises(life_cycle.UntrustedFiles):
        runner.resume_settings(out, notify=told.append)
    assert told[-1] == f"--resume imports {inside} (changed since the run started)"


def test_a_run_json_without_hashes_still_resumes_with_a_notice(tmp_path, isolated_registries):
    out = tmp_path / "run"
    inside = out / "user_problem.py"
    new_user_run(out, USER_PROBLEM_FILE)
    copy_renamed(USER_PROBLEM_FILE, inside)
    run = json.loads((out / "run.json").read_text())
    run["settings"]["problems"] = [f"{inside}:ShiftedTanh"]
    del run["files"]
    (out / "run.json").write_text(json.dumps(run))
    told = []
    runner.resume_settings(out, notify=told.append)
    assert "records no hashes" in told[0] and told[1] == f"--resume imports {inside}"


# ------------------------------------------------------------------- training
def test_a_training_run_whose_loss_blows_up_is_diverged_with_its_step(tmp_path):
    from rich.console import Console

    from deqbench.harness.train.loop import train
    from deqbench.harness.train.report import final_table, print_final_table

    out = tmp_path / "train"
    rows = train("analytic", "vanderpol", out=out, quick=True, steps=4, lr=1e10, no_mlp=True, threads=1)
    cell = rows.drop_duplicates("cell").iloc[0]
    assert cell["status"] == "diverged" and cell["message"].startswith("step 1: loss")
    console = Console(record=True, width=300)
    print_final_table(final_table(rows, [out]), console)
    shown = console.export_text()
    assert "analytic (1 stopped)" in shown and "`" not in shown


def test_train_lr_accepts_what_its_message_says():
    messages = [invoke("train", "--lr", value).output for value in ("-1", "0")]
    assert (
        messages[0].replace("-1", "0")
        == messages[1]
        == "deqbench: error: --lr 0: accepted: a number, finite and > 0\n"
    )


# ------------------------------------------------------------ users' mistakes
MISTAKEN = FIXTURES / "mistaken_problems.py"


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("UnknownDirection", "building it raised TypeError: UnknownDirection: physics_partials: partial 'q'"),
        (
            "FourthOrder",
            "building it raised TypeError: FourthOrder: physics_partials: a partial derivative has order",
        ),
        ("JaxButTorch", "its layer f under jax raised TypeError"),
    ],
)
def test_a_users_mistaken_problem_is_bad_input_not_a_strategy_failure(tmp_path, problem, message):
    out = tmp_path / "run"
    result = invoke(
        "run",
        "-s",
        "analytic,jax-analytic",
        "-p",
        f"{MISTAKEN}:{problem}",
        "-q",
        "forward",
        "--quick",
        "-o",
        out,
    )
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and message in result.output
    assert not out.exists()


def test_the_jax_oracle_on_a_torch_only_problem_is_bad_input(tmp_path):
    result = invoke(
        "run",
        "-s",
        "analytic",
        "-p",
        f"{USER_PROBLEM_FILE}:ShiftedTanh",
        "--oracle",
        "jax",
        "-o",
        tmp_path / "run",
    )
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "--oracle jax: problem 'user-shifted-tanh' runs under torch only" in result.output
