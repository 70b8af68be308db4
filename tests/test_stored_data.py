"""Stored data keep working: a run folder and oracle cache entries written by an earlier
deqbench (tests/fixtures/stored/, main 4f33df2, before harness/ became sub-packages) load,
show, export, report and resume as they did."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import deqbench
from deqbench.harness.cli.main import main
from deqbench.harness.oracle import OracleCache, OracleCacheWarning
from deqbench.harness.results import RunFolder

STORED = Path(__file__).parent / "fixtures" / "stored"
OLD_RUN = STORED / "run-4f33df2"
OLD_CACHE = STORED / "oracle-cache-4f33df2"
CELLS = {"analytic/tanh/jvp", "analytic/tanh/grad", "unrolled/tanh/jvp", "unrolled/tanh/grad"}


@pytest.fixture
def old_run(tmp_path):
    copy = tmp_path / "old-run"
    shutil.copytree(OLD_RUN, copy)
    return copy


def test_an_old_run_folder_reads_every_cell(old_run):
    rows = RunFolder(old_run).read()
    assert set(rows["cell"]) == CELLS
    assert set(rows["status"]) == {"ok"}


def test_an_old_run_folder_shows_and_exports(old_run):
    shown = CliRunner().invoke(main, ["show", str(old_run)])
    assert shown.exit_code == 0, shown.output
    assert "analytic" in shown.output and "unrolled" in shown.output
    exported = CliRunner().invoke(main, ["export", str(old_run), "--csv"])
    assert exported.exit_code == 0, exported.output
    assert (old_run / "results.csv").stat().st_size > 0


def test_an_old_run_folder_makes_a_report(old_run, tmp_path):
    result = CliRunner().invoke(main, ["report", str(old_run), "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report" / "report.html").exists()


def test_old_oracle_cache_entries_are_recomputed_once_then_hits(tmp_path):
    """Entries of 4f33df2 carry a plain sha256, which anyone can recompute over a forged
    answer; this deqbench trusts only entries checksummed under the user's key, so an old
    entry is recomputed (with one warning) and rewritten keyed, a hit from then on."""
    cache_dir = tmp_path / "cache"
    shutil.copytree(OLD_CACHE, cache_dir)
    tanh = deqbench.get_problem("tanh", "quick")
    for query in ("jvp", "grad"):
        with pytest.warns(OracleCacheWarning, match="no DEQBORACLE2 header"):
            first = OracleCache(cache_dir).answer(tanh, query)
        assert not first.cached
        assert OracleCache(cache_dir).answer(tanh, query).cached, f"the rewritten {query} entry was not read"


def test_an_old_run_resumes_with_its_old_cache(old_run, tmp_path, monkeypatch):
    shutil.copytree(OLD_CACHE, tmp_path / "cache")
    monkeypatch.setenv("DEQBENCH_CACHE_DIR", str(tmp_path / "cache"))
    (old_run / "cells" / "unrolled__tanh__grad.parquet").unlink()
    result = CliRunner().invoke(main, ["run", "--resume", str(old_run)])
    assert result.exit_code == 0, result.output
    assert set(RunFolder(old_run).read()["cell"]) == CELLS
