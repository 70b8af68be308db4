"""deqbench report: figures (PNG and SVG), a self-contained HTML page and a Markdown summary.

One set of small real runs per module: a sweep (m=4, m=8 in one folder), two runs forcing
the forward iteration count, and a faulty strategy that fails a claimed-exact query.

Tests internals by their path: report.data's cell table and size parsing.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from helpers import registries_isolated

import deqbench
from deqbench.harness.cli.main import main
from deqbench.harness.report import KNOWN_STRATEGIES, strategy_style
from deqbench.harness.report.data import base_cell, cell_table, load_rows, parse_size

FAULTY = Path(__file__).parent / "fixtures" / "faulty_strategies.py"
STRATEGIES = "analytic,unrolled,implicit-vjp"
FIGURES = ["accuracy_tanh", "time_vs_size_tanh", "memory_vs_size_tanh", "memory_vs_iterations_tanh",
           "time_vs_error_tanh", "relative_to_unrolled_tanh"]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    common = dict(quick=True, repeats=1)
    deqbench.run(STRATEGIES, "tanh", "forward,jvp2", sweep="m=4,8", out=root / "sweep", **common)
    for k in (4, 8):
        deqbench.run(
            "analytic,unrolled",
            "tanh",
            "pinn_grad",
            size="m=4",
            f_tol=1e-30,
            f_max_iter=k,
            out=root / f"k{k}",
            **common,
        )
    with registries_isolated():  # the faulty strategy is registered for this run only
        deqbench.run(f"{FAULTY}:Raises", "tanh", "forward", size="m=4", out=root / "faulty", **common)
    return root


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    inputs = [runs / "sweep", runs / "k4", runs / "k8", runs / "faulty"]
    result = CliRunner().invoke(main, ["report", *map(str, inputs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_every_figure_is_written_as_png_and_svg(report):
    out, _ = report
    for name in FIGURES:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, name
        assert b"<svg" in svg.read_bytes()[:2000] and svg.stat().st_size > 10_000, name


def test_html_is_self_contained_and_embeds_the_figures(report):
    out, _ = report
    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    assert "<link" not in page and "<script" not in page and "@import" not in page
    assert page.count('src="data:image/png;base64,') == len(FIGURES)
    for name in FIGURES:
        assert f'id="{name}"' in page


def test_markdown_has_metadata_summary_verdicts_and_failed_cells(report):
    out, _ = report
    text = (out / "report.md").read_text()
    for heading in ("## Runs", "## Summary", "## Verdict per strategy and query", "## Figures"):
        assert heading in text
    assert "2.13" in text and "float64" in text  # torch version, dtype from the rows
    failed = text.split("## Cells that failed")[1]
    raises = next(line for line in failed.splitlines() if "test-raises/tanh/forward" in line)
    assert re.search(r"\| error +\| failed +\|", raises) and "deliberate failure in a test strategy" in raises
    deviations = text.split("## Deviations where no exactness is claimed")[1]
    vjp = next(line for line in deviations.splitlines() if "implicit-vjp/tanh/jvp2" in line)
    assert re.search(r"\| wrong +\| wrong, not claimed +\|", vjp) and "relative error" in vjp
    assert "implicit-vjp/tanh/jvp2" not in failed.split("## Deviations")[0]
    verdicts = text.split("## Verdict per strategy and query")[1].split("##")[0]
    assert "✗ FAILS (1 of 1)" in verdicts and "✓ exact" in verdicts
    for name in FIGURES:
        assert f"]({name}.png)" in text


def test_figures_that_the_data_cannot_support_are_left_out_with_a_reason(runs, tmp_path):
    out = tmp_path / "one"
    result = CliRunner().invoke(
        main, ["report", str(runs / "faulty"), "--out", str(out), "--baseline", "test-raises"]
    )
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    assert "one size only (m=4,n=3,batch=4,rho=0.8)" in text and "f_max_iter is 500 in every cell" in text
    assert not (out / "time_vs_size_tanh.png").exists()
    assert (out / "accuracy_tanh.png").exists() and (out / "accuracy_tanh.svg").exists()


def test_a_csv_export_reads_like_its_folder(runs, tmp_path):
    exported = tmp_path / "sweep.csv"
    assert CliRunner().invoke(main, ["export", str(runs / "sweep"), "-o", str(exported)]).exit_code == 0
    from_csv = cell_table(load_rows(exported)).drop(columns=["source", "knobs"])
    from_folder = cell_table(load_rows(runs / "sweep")).drop(columns=["source", "knobs"])
    pd.testing.assert_frame_equal(from_csv, from_folder, check_dtype=False)


def test_svg_only_embeds_svg(runs, tmp_path):
    out = tmp_path / "r"
    args = ["report", str(runs / "faulty"), "--out", str(out), "--format", "svg", "--baseline", "test-raises"]
    assert CliRunner().invoke(main, args).exit_code == 0
    assert (out / "accuracy_tanh.svg").exists() and not (out / "accuracy_tanh.png").exists()
    assert 'src="data:image/svg+xml;base64,' in (out / "report.html").read_text()


@pytest.mark.parametrize(
    "args, message",
    [
        (["{runs}/nowhere"], "no such file or folder"),
        (["{tmp}"], "a folder with no run.json"),
        (["{tmp}/notes.txt"], "not a run folder nor a .csv/.parquet export"),
        (["{runs}/empty"], "no finished cells"),
        (["{runs}/sweep", "--baseline", "nobody"], "the strategies there: analytic, implicit-vjp, unrolled"),
        (["{runs}/sweep", "--format", "gif"], "unknown format gif"),
        (["{runs}/sweep", "--out", "{tmp}/notes.txt"], "--out {tmp}/notes.txt: a file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(runs, tmp_path, args, message):
    (tmp_path / "notes.txt").write_text("not results")
    empty = runs / "empty"
    if not empty.exists():
        deqbench.run("analytic", "tanh", "forward", quick=True, repeats=1, out=empty)
        for cell in (empty / "cells").glob("*.parquet"):
            cell.unlink()
    out = tmp_path / "out"
    args = [a.format(runs=runs, tmp=tmp_path) for a in args]
    if "--out" not in args:
        args += ["--out", str(out)]
    result = CliRunner().invoke(main, ["report", *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deqbench: error: ")
    assert message.format(tmp=tmp_path) in lines[0]
    assert not out.exists()
    assert result.stdout == ""


def test_a_strategy_keeps_its_style_whoever_else_is_in_the_run():
    styles = [strategy_style(name) for name in KNOWN_STRATEGIES]
    assert len(set(styles)) == len(styles)
    assert strategy_style("analytic") == ("#0072B2", "o")
    assert strategy_style("test-raises") == strategy_style("test-raises")


def test_size_strings_parse_into_knobs():
    assert parse_size("m=64,n=3,batch=4,rho=0.8") == {"m": 64, "n": 3, "batch": 4, "rho": 0.8}
    assert base_cell("analytic/tanh/jvp@m=64") == "analytic/tanh/jvp"


def test_importing_the_cli_does_not_import_matplotlib():
    code = (
        "import sys, deqbench.harness.cli.main\n"
        "assert 'matplotlib' not in sys.modules and 'seaborn' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_show_ends_with_the_recommendation_and_growth(runs):
    result = CliRunner().invoke(main, ["show", str(runs / "sweep")])
    assert result.exit_code == 0, result.output
    tail = result.output.split("Recommendation", 1)[1]
    assert re.search(r"tanh: use (analytic|unrolled) \(fastest exact on \d of 4 queries and sizes", tail)
    assert "Not exact here: implicit-vjp (wrong, exactness not claimed, error" in tail  # jvp2
    assert re.search(r"tanh forward: analytic time ∝ m\^-?\d", tail)  # the sweep m=4,8


def test_the_report_opens_with_the_recommendation(report):
    out, _ = report
    text = (out / "report.md").read_text()
    assert text.index("## Recommendation") < text.index("## Runs") < text.index("## Summary")
    block = text.split("## Recommendation")[1].split("## Runs")[0]
    assert "- tanh: use " in block and "### Per query: exact strategies, fastest first" in block
    assert "### Growth with size" in block
