"""deqbench compare A B: ratios B / A of the shared cells, changes first, regressions exit 1."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

import deqbench
from deqbench.harness.cli.main import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    deqbench.run(
        "analytic,unrolled", "tanh", "forward,pinn_grad", quick=True, repeats=1, size="m=4", out=root / "a"
    )
    exported = root / "a.parquet"
    assert (
        CliRunner().invoke(main, ["export", str(root / "a"), "--parquet", "-o", str(exported)]).exit_code == 0
    )
    rows = pd.read_parquet(exported)
    slower = rows.copy()
    slow_cell = "unrolled/tanh/pinn_grad"
    chosen = (slower["cell"] == slow_cell) & (slower["metric"] == "time_median")
    slower.loc[chosen, "value"] *= 3
    slower.to_parquet(root / "slower.parquet", index=False)
    wrong = rows.copy()
    wrong.loc[wrong["cell"] == "analytic/tanh/forward", "status"] = "wrong"
    wrong.to_parquet(root / "wrong.parquet", index=False)
    return root, slow_cell


def invoke(*args) -> object:
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_identical_runs_exit_0(runs, tmp_path):
    root, _ = runs
    result = invoke(root / "a", root / "a.parquet", "--fail-on-regression", "2", "--out", tmp_path / "c")
    assert result.exit_code == 0, result.output
    assert "4 shared cells" in result.output and "0 changed beyond" in result.output
    for name in ("compare.md", "compare.csv", "compare.png", "compare.svg"):
        assert (tmp_path / "c" / name).stat().st_size > 1000, name


def test_a_slower_cell_is_listed_first_and_fails_with_the_flag(runs):
    root, slow_cell = runs
    result = invoke(root / "a", root / "slower.parquet", "--fail-on-regression", "2")
    assert result.exit_code == 1
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and "/tanh/" in line]
    assert table[0].startswith(f"| {slow_cell} |") and "time ×3" in table[0]
    assert "regression" in result.stderr and slow_cell in result.stderr
    assert invoke(root / "a", root / "slower.parquet").exit_code == 0  # no flag: a report only
    assert invoke(root / "a", root / "slower.parquet", "--fail-on-regression", "4").exit_code == 0


def test_right_to_wrong_fails(runs):
    root, _ = runs
    result = invoke(root / "a", root / "wrong.parquet", "--fail-on-regression", "10")
    assert result.exit_code == 1
    table = [line for line in result.stdout.splitlines() if line.startswith("| ") and "/tanh/" in line]
    assert table[0].startswith("| analytic/tanh/forward |") and "ok → wrong" in table[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["{a}", "{root}/nothing"], "no such file or folder"),
        (["{a}"], "compare takes two runs"),
        (
            ["{a}", "{a}", "--fail-on-regression", "1"],
            "--fail-on-regression 1: accepted: a finite number above 1",
        ),
        (["{a}", "{a}", "--fail-on-regression", "fast"], "--fail-on-regression fast"),
        (["{a}", "{a}", "--threshold", "0.5"], "--threshold 0.5"),
        (["{a}", "{a}", "--out", "{root}/a.parquet"], "a file"),
        (["{a}", "{root}/notes.md"], "not a run folder nor a .csv/.parquet export"),
    ],
)
def test_bad_input_is_one_line_exit_2(runs, args, message):
    root, _ = runs
    (root / "notes.md").write_text("hello")
    args = [a.format(a=root / "a", root=root) for a in args]
    result = invoke(*args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deqbench: error: ") and message in lines[0]
    assert result.stdout == ""


def test_report_and_compare_are_deqbench_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert "report" in result.output and "compare" in result.output
