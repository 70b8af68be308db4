"""A results folder that was damaged, half-written or shared: one warning line per bad file,
never a traceback, and a resume that computes again what it cannot trust."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import deqbench
from deqbench.harness.cli.main import main
from deqbench.harness.oracle import CACHE_ENV
from deqbench.harness.results import RunFolder
from deqbench.harness.results import rows as results

MATRIX = {"strategies": "analytic", "problems": "tanh", "queries": "forward,jvp", "quick": True, "repeats": 1}


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "run-folder-oracle-cache"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished two-cell run, copied afresh for each test that damages it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.getbasetemp() / "run-folder-oracle-cache"))
        deqbench.run(**MATRIX, out=out)
    return out


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_cell_file(run: Path, cell: str = "analytic__tanh__jvp") -> Path:
    return run / "cells" / f"{cell}.parquet"


def damage_by_truncation(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_show_export_and_resume_skip_a_truncated_cell_file_and_resume_recomputes_it(run_copy):
    damage_by_truncation(one_cell_file(run_copy))
    shown = invoke("show", run_copy)
    assert shown.exit_code == 0, shown.output
    assert f"deqbench: warning: skipping {one_cell_file(run_copy)}: unreadable" in shown.output
    assert "1 of 2 cells finished" in shown.output

    exported = invoke("export", run_copy, "--csv")
    assert exported.exit_code == 0 and "skipping" in exported.output

    resumed = invoke("run", "--resume", run_copy)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming: 1 of 2 cells already finished" in resumed.output
    statuses = results.cell_statuses(RunFolder(run_copy).read())["status"].tolist()
    assert statuses == ["ok", "ok"]


def test_a_foreign_cell_file_is_skipped_not_merged(run_copy, finished_run, tmp_path):
    other = tmp_path / "other"
    deqbench.run(**{**MATRIX, "queries": "grad"}, out=other)
    shutil.copy(one_cell_file(other, "analytic__tanh__grad"), run_copy / "cells")
    with pytest.warns(UserWarning, match="analytic__tanh__grad.parquet: belongs to another run"):
        rows = RunFolder(run_copy).read()
    assert set(rows["cell"]) == {"analytic/tanh/forward", "analytic/tanh/jvp"}


@pytest.mark.parametrize("content", ["{not json", "[]", json.dumps({"format": 1, "settings": {}})])
def test_show_export_and_resume_of_a_malformed_run_json_are_one_line(run_copy, content):
    (run_copy / "run.json").write_text(content)
    for command in (["show", run_copy], ["export", run_copy], ["run", "--resume", run_copy]):
        result = invoke(*command)
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
        assert "run.json" in result.output


def test_a_full_disk_is_one_line_and_the_run_resumes_afterwards(tmp_path, monkeypatch):
    out = tmp_path / "full"
    write_cell = RunFolder.write_cell
    written = []

    def fills_up(self, cell_id, rows):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(cell_id)
        return write_cell(self, cell_id, rows)

    monkeypatch.setattr(RunFolder, "write_cell", fills_up)
    result = invoke("run", "-s", "analytic", "-p", "tanh", "-q", "forward,jvp", "--quick", "-o", out)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("deqbench: error")]
    assert len(lines) == 1 and "no space left on device" in lines[0] and f"--resume {out}" in lines[0]
    assert "Traceback" not in result.output

    monkeypatch.setattr(RunFolder, "write_cell", write_cell)
    resumed = invoke("run", "--resume", out)
    assert resumed.exit_code == 0, resumed.output
    assert "resuming: 1 of 2 cells already finished" in resumed.output
