"""deqbench compare A B: ratios B / A of the shared cells, changes first, regressions exit 1."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

import deqbench
from deqbench.harness.cli.main import main


def scaled(
    rows: pd.DataFrame, cell: str, factor: float, metrics=("time_median", "time_repeat")
) -> pd.DataFrame:
    rows = rows.copy()
    chosen = (rows["cell"] == cell) & rows["metric"].isin(metrics)
    rows.loc[chosen, "value"] *= factor
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    deqbench.run(
        "analytic,unrolled", "tanh", "forward,pinn_grad", quick=True, repeats=5, size="m=4", out=root / "a"
    )
    exported = root / "a.parquet"
    assert (
        CliRunner().invoke(main, ["export", str(root / "a"), "--parquet", "-o", str(exported)]).exit_code == 0
    )
    rows = pd.read_parquet(exported)
    slow_cell = "unrolled/tanh/pinn_grad"
    scaled(rows, slow_cell, 3).to_parquet(root / "slower.parquet", index=False)
    # one repeat of five ten times slower and the median moved: a shared machine's hiccup
    noisy = rows.copy()
    first = (noisy["cell"] == slow_cell) & (noisy["metric"] == "time_repeat") & (noisy["output"] == "0")
    noisy.loc[first, "value"] *= 10
    noisy.loc[(noisy["cell"] == slow_cell) & (noisy["metric"] == "time_median"), "value"] *= 3
    noisy.to_parquet(root / "noisy.parquet", index=False)
    # files written before each repeat was kept: the IQR bands decide
    old = rows[rows["metric"] != "time_repeat"]
    old.to_parquet(root / "old.parquet", index=False)
    scaled(old, slow_cell, 3).to_parquet(root / "old_slower.parquet", index=False)
    wrong = rows.copy()
    wrong.loc[wrong["cell"] == "analytic/tanh/forward", "status"] = "wrong"
    wrong.to_parquet(root / "wrong.parquet", index=False)
    looser = rows.assign(f_tol=rows["f_tol"] * 100)
    looser.to_parquet(root / "looser.parquet", index=False)
    rows.assign(parallel_cells=2).to_parquet(root / "side_by_side.parquet", index=False)
    return root, slow_cell


def invoke(*args) -> object:
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def table_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("| ") and "/tanh/" in line]


def test_identical_runs_exit_0(runs, tmp_path):
    root, _ = runs
    result = invoke(
        root / "a", root / "a.parquet", "--fail-on-regression", "2", "--out", tmp_path / "c", "--markdown"
    )
    assert result.exit_code == 0, result.output
    assert "4 shared cells" in result.output and "0 changed beyond" in result.output
    assert "Settings: the same on both sides." in result.output
    for name in ("compare.md", "compare.csv", "compare.png", "compare.svg"):
        assert (tmp_path / "c" / name).stat().st_size > 1000, name


def test_a_slower_cell_is_listed_first_and_fails_with_the_flag(runs):
    root, slow_cell = runs
    result = invoke(root / "a", root / "slower.parquet", "--fail-on-regression", "2", "--markdown")
    assert result.exit_code == 1
    first = table_lines(result.stdout)[0]
    assert first.startswith(f"| {slow_cell} ") and "time ×3 (p = 0.0079)" in first
    assert "regression" in result.stderr and slow_cell in result.stderr
    assert invoke(root / "a", root / "slower.parquet").exit_code == 0  # no flag: a report only
    assert invoke(root / "a", root / "slower.parquet", "--fail-on-regression", "4").exit_code == 0


def test_a_slowdown_within_the_noise_is_shown_but_not_a_regression(runs):
    root, slow_cell = runs
    result = invoke(root / "a", root / "noisy.parquet", "--fail-on-regression", "2", "--markdown")
    assert result.exit_code == 0, result.stderr
    line = next(line for line in table_lines(result.stdout) if line.startswith(f"| {slow_cell} "))
    assert "≈3×" in line and "within noise (Mann-Whitney U p = " in line
    assert "0 changed beyond" in result.stdout


def test_files_without_repeats_fall_back_to_the_iqr_bands(runs):
    root, slow_cell = runs
    result = invoke(
        root / "old.parquet", root / "old_slower.parquet", "--fail-on-regression", "2", "--markdown"
    )
    assert result.exit_code == 1
    assert "time ×3" in table_lines(result.stdout)[0]
    assert invoke(root / "old.parquet", root / "old.parquet", "--fail-on-regression", "2").exit_code == 0


def test_differing_settings_come_first(runs):
    root, _ = runs
    result = invoke(root / "a", root / "looser.parquet", "--markdown")
    settings = result.stdout.index("Settings that differ")
    assert settings < result.stdout.index("shared cells")
    line = next(line for line in result.stdout.splitlines() if line.startswith("| f_tol"))
    assert "1e-10" in line and "1e-08" in line


def test_cells_run_side_by_side_are_named_as_a_differing_setting(runs):
    root, _ = runs
    result = invoke(root / "a", root / "side_by_side.parquet", "--markdown")
    line = next(line for line in result.stdout.splitlines() if line.startswith("| parallel_cells"))
    assert "| 1 " in line and "| 2 " in line


def test_a_terminal_gets_tables_and_memory_ratios_are_never_infinite(runs):
    root, _ = runs
    result = invoke(root / "a", root / "slower.parquet")
    assert result.exit_code == 0
    assert "┃" in result.stdout or "│" in result.stdout  # rich's table, not Markdown
    assert not table_lines(result.stdout)
    assert "∞" not in result.stdout and " 0×" not in result.stdout


def test_right_to_wrong_fails(runs):
    root, _ = runs
    result = invoke(root / "a", root / "wrong.parquet", "--fail-on-regression", "10", "--markdown")
    assert result.exit_code == 1
    assert table_lines(result.stdout)[0].startswith("| analytic/tanh/forward ")
    assert "ok → wrong" in table_lines(result.stdout)[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["{a}", "{root}/nothing"], "no such file or folder"),
        (["{a}"], "compare takes two runs"),
        (
            ["{a}", "{a}", "--fail-on-regression", "1"],
            "--fail-on-regression 1: accepted: a ratio such as 1.25, finite and > 1",
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
