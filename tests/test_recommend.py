"""The report's recommendation, noise marks, document safety and scale, on synthetic rows.

Rows are made here (no worker runs), so each test knows the times, memory and verdicts it
feeds the report and can check what comes out.

Tests internals by their path: report's units, writer, noise, documents and figure names, results.rows.
"""

from __future__ import annotations

import base64
import html.parser
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from deqbench.harness.cli.main import main
from deqbench.harness.report import cell_table, noise, recommend
from deqbench.harness.report.figures import figure_name
from deqbench.harness.report.units import format_bytes, format_memory, format_ratio
from deqbench.harness.report.writer import markdown_code, markdown_escape
from deqbench.harness.results.rows import Metric, cell_rows

IDENTITY = {
    "run_id": "r1",
    "backend": "torch",
    "preset": "quick",
    "device": "cpu",
    "dtype": "float64",
    "message": "",
    "oracle": "torch",
    "oracle_method": "dense",
    "tol": 1e-6,
    "f_solver": "anderson",
    "b_solver": "anderson",
    "f_tol": 1e-10,
    "b_tol": 1e-10,
    "f_max_iter": 500,
    "b_max_iter": 500,
    "peer": "",
    "peer_differences": "",
    "seed": 0,
    "deqbench_version": "0.1.0",
    "torch_version": "2.13.0",
    "numpy_version": "2",
    "jax_version": "",
    "jaxlib_version": "",
    "python_version": "3.11",
    "git_commit": "abc",
    "device_name": "cpu",
    "threads": 1,
    "host": "h",
    "timestamp": "2026-12-05T12:00:00+00:00",
}


def cell(
    strategy,
    problem="tanh",
    query="grad",
    size="m=8",
    times=(0.01, 0.011, 0.012),
    memory=2**20,
    error=1e-12,
    status="ok",
    exact=True,
    message="",
):
    """The rows of one cell: its repeats, median and IQR, memory, error."""
    identity = {
        **IDENTITY,
        "cell": f"{strategy}/{problem}/{query}@{size}",
        "strategy": strategy,
        "problem": problem,
        "query": query,
        "size": size,
        "status": status,
        "expected_exact": exact,
        "message": message,
    }
    q1, q3 = np.percentile(times, [25, 75])
    metrics = [
        Metric("relative_error", error, "rel"),
        Metric("relative_error", error, "rel", "z"),
        Metric("time_median", float(np.median(times)), "s"),
        Metric("time_iqr", float(q3 - q1), "s"),
        Metric("peak_rss_bytes", memory, "B"),
        Metric("saved_tensor_bytes", memory / 2, "B"),
        Metric("repeats", len(times), "count"),
        *[Metric("time_repeat", t, "s", str(i)) for i, t in enumerate(times)],
    ]
    return cell_rows(identity, metrics)


def rows_of(*cells) -> pd.DataFrame:
    return pd.concat(cells, ignore_index=True).assign(source="synthetic")


# ------------------------------------------------------------------ units
def test_memory_below_the_meters_resolution_is_said_so_never_0_B():
    assert format_memory(0.0, "peak_rss_bytes") == "< 64 KiB"
    assert format_memory(40_000.0, "peak_rss_bytes") == "< 64 KiB"
    assert format_memory(3 * 2**20, "peak_rss_bytes") == "3 MiB"
    assert format_memory(0.0, "saved_tensor_bytes") == "0 B"  # counted exactly
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(float("nan")) == "—"
    assert format_ratio(math.inf) == "—" and format_ratio(3.31) == "3.3×"


# ------------------------------------------------------------------ noise
def test_the_rank_test_needs_enough_repeats_and_separates_clear_shifts():
    a = noise.Timing(0.010, 0.001, (0.010, 0.011, 0.009, 0.010, 0.0105))
    slower = noise.Timing(0.030, 0.001, tuple(3 * t for t in a.repeats))
    assert noise.significant(a, slower).significant
    assert noise.significant(a, slower).p == pytest.approx(2 / 252)
    three = noise.Timing(0.01, 0.001, a.repeats[:3])
    assert not noise.significant(three, noise.Timing(0.03, 0.001, slower.repeats[:3])).significant
    assert noise.repeats_needed() == 5
    # one hiccup among five repeats is not a slowdown
    hiccup = noise.Timing(0.03, 0.02, (0.1, *a.repeats[1:]))
    assert not noise.significant(a, hiccup).significant


# ------------------------------------------------------------------ recommend
def test_exact_strategies_are_ranked_with_ratios_and_the_others_named_apart():
    rows = rows_of(
        cell("analytic", times=(0.010, 0.0102, 0.0101), memory=2 * 2**20),
        cell("unrolled", times=(0.030, 0.031, 0.029), memory=24 * 2**20),
        cell("iterative-backward", times=(0.0101, 0.0099, 0.0103), memory=2 * 2**20),
        cell("implicit-vjp", query="grad", error=3e-2, status="wrong", exact=False),
        cell("analytic-seed", error=0.1, status="wrong", exact=True),
    )
    (found,) = recommend.recommendations(cell_table(rows))
    assert [r.strategy for r in found.ranked] == ["analytic", "iterative-backward", "unrolled"]
    line = found.line()
    assert line.startswith("tanh grad (m=8): analytic 10.1 ms ± ")
    assert "iterative-backward ≈1× the time (within noise)" in line
    assert "unrolled 3× the time, 12× the memory" in line
    assert "analytic-seed (wrong though claimed exact, error 1.0e-01)" in line
    assert "implicit-vjp (wrong, exactness not claimed, error 3.0e-02)" in line
    assert recommend.answers([found]) == ["tanh: use analytic (fastest exact on 1 of 1 queries and sizes)."]


def test_memory_under_the_resolution_gets_no_ratio():
    rows = rows_of(
        cell("analytic", memory=0.0), cell("unrolled", times=(0.02, 0.021, 0.022), memory=8 * 2**20)
    )
    (found,) = recommend.recommendations(cell_table(rows))
    assert "< 64 KiB" in found.line() and "0 B" not in found.line()
    assert found.line().startswith("tanh grad (m=8): analytic 11 ms ± 500 µs, < 64 KiB; ")
    assert "unrolled 1.9× the time, ≥128× the memory" in found.line()  # a lower bound
    # against the meter's resolution (64 KiB), not against 0 B: a finite lower bound
    assert found.ranked[1].memory_ratio == pytest.approx(8 * 2**20 / 2**16)
    notes = recommend.noise_notes([found])
    assert any("below the meter's resolution" in n and "analytic" in n for n in notes)


def test_a_fastest_strategy_that_is_not_the_leanest_says_so():
    rows = rows_of(
        cell("unrolled", memory=8 * 2**20), cell("analytic", times=(0.02, 0.021, 0.022), memory=2**20)
    )
    (found,) = recommend.recommendations(cell_table(rows))
    assert found.line().startswith(
        "tanh grad (m=8): unrolled 11 ms ± 500 µs, 8 MiB (8× the leanest's memory); "
    )


def test_tiny_times_carry_a_note():
    rows = rows_of(cell("analytic", times=(1e-4, 1.1e-4, 1.2e-4)), cell("unrolled"))
    notes = recommend.noise_notes(recommend.recommendations(cell_table(rows)))
    assert any("under 3 ms on grad" in n for n in notes)


def test_growth_across_a_sweep_recovers_the_exponent_with_its_spread():
    generator = np.random.default_rng(0)
    cells = []
    for m in (64, 256, 1024):
        for strategy, power in (("analytic", 1.0), ("unrolled", 2.0)):
            base = 1e-6 * m**power
            times = tuple(base * (1 + 0.02 * generator.standard_normal(3)))
            cells.append(cell(strategy, size=f"m={m}", times=times, memory=1e3 * m**power))
    found = recommend.growth(cell_table(rows_of(*cells)))
    by_strategy = {g.strategy: g for g in found}
    assert by_strategy["analytic"].time_exponent == pytest.approx(1.0, abs=0.03)
    assert by_strategy["unrolled"].time_exponent == pytest.approx(2.0, abs=0.03)
    assert 0 < by_strategy["unrolled"].time_error < 0.03
    assert "unrolled time ∝ m^2.0" in by_strategy["unrolled"].text()
    # analytic's memory is under 64 KiB at m = 64 (64 KB): fitted over the two sizes above it
    assert by_strategy["unrolled"].memory_exponent == pytest.approx(2.0, abs=1e-6)


# ------------------------------------------------------------------ documents
class Page(html.parser.HTMLParser):
    """Tags, images and references of a page, with unclosed tags counted."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.images: list[str] = []
        self.references: list[str] = []
        self.scripts = 0
        self.mismatched = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("href", "src"):
            if key in attrs:
                self.references.append(attrs[key])
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open.pop() != tag:
            self.mismatched += 1


HOSTILE_PROBLEM = "p<script>alert(1)</script>/[x](y)*z*"
HOSTILE_MESSAGE = "boom <script>alert(2)</script> | `tick` & <b>bold</b>"


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    rows = rows_of(
        *(cell(s, problem=HOSTILE_PROBLEM, size=f"m={m}") for s in ("analytic", "unrolled") for m in (4, 8)),
        cell("unrolled", problem=HOSTILE_PROBLEM, query="jvp", status="error", message=HOSTILE_MESSAGE),
        cell("analytic", problem="p/x"),
        cell("unrolled", problem="p/x"),
        cell("analytic", problem="p_x"),
        cell("unrolled", problem="p_x"),
    )
    rows.drop(columns="source").to_parquet(root / "rows.parquet", index=False)
    out = root / "report"
    result = CliRunner().invoke(
        main, ["report", str(root / "rows.parquet"), "--out", str(out), "--format", "png"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_the_html_parses_embeds_every_image_and_refers_to_nothing_outside(hostile_report):
    page = (hostile_report / "report.html").read_text()
    parser = Page()
    parser.feed(page)
    parser.close()
    assert parser.mismatched == 0 and parser.open == []
    assert parser.scripts == 0  # the names' <script> is text, not a tag
    assert parser.images and all(src.startswith("data:image/png;base64,") for src in parser.images)
    for src in parser.images:
        assert base64.b64decode(src.split(",", 1)[1], validate=True)[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(parser.references) == set(parser.images)  # nothing else is referred to
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;script&gt;alert(2)" in page


def test_every_figure_file_decodes(hostile_report):
    import matplotlib.image

    files = sorted(hostile_report.glob("*.png"))
    assert files
    for path in files:
        assert matplotlib.image.imread(path).size > 0


def test_names_with_a_slash_get_safe_figure_files_that_never_collide(hostile_report):
    slashed = figure_name("accuracy", "p/x")
    assert "/" not in slashed and slashed != figure_name("accuracy", "p_x") == "accuracy_p_x"
    assert (hostile_report / f"{slashed}.png").exists() and (hostile_report / "accuracy_p_x.png").exists()
    assert all(re.fullmatch(r"[A-Za-z0-9_.+-]+", p.name) for p in hostile_report.iterdir())


def test_markdown_shows_names_and_messages_as_text(hostile_report):
    text = (hostile_report / "report.md").read_text()
    outside_code = re.sub(r"(`+).*?\1", "", text)  # a code span shows its text as it is
    assert "<script>" not in outside_code and "[x](y)" not in outside_code and "*z*" not in outside_code
    assert r"p\<script\>alert(1)\</script\>/\[x\](y)\*z\*" in text
    assert r"boom \<script\>alert(2)\</script\> \| \`tick\` & \<b\>bold\</b\>" in text
    assert markdown_escape("pinn_grad") == "pinn_grad" and markdown_code("a`b") == "``a`b``"


def test_deviations_where_exactness_is_not_claimed_have_their_own_list():
    rows = rows_of(cell("analytic"), cell("implicit-vjp", status="wrong", exact=False, error=0.5))
    from deqbench.harness.report.documents import run_document

    document = run_document(rows, cell_table(rows), [], "analytic")
    failed, deviations = document.sections[-2], document.sections[-1]
    assert failed.blocks[0].kind == "paragraph"  # nothing failed
    assert "implicit-vjp/tanh/grad" in deviations.blocks[1].rows[0][0].text
    assert "implicit-vjp" not in str(failed.blocks)


# ------------------------------------------------------------------ scale
def timed_report(rows: pd.DataFrame, tmp_path: Path) -> tuple[float, str]:
    rows.drop(columns="source").to_parquet(tmp_path / "rows.parquet", index=False)
    start = time.perf_counter()
    args = ["report", str(tmp_path / "rows.parquet"), "--out", str(tmp_path / "r"), "--format", "png"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return time.perf_counter() - start, (tmp_path / "r" / "report.md").read_text()


@pytest.mark.slow
def test_a_report_over_500_problems_summarises_across_them(tmp_path):
    cells = [cell(s, problem=f"p{i}") for i in range(500) for s in ("analytic", "unrolled")]
    cells += [cell(s, problem=f"p{i}", query="jvp") for i in range(500) for s in ("analytic", "unrolled")]
    seconds, text = timed_report(rows_of(*cells), tmp_path)
    figures = sorted(p.name for p in (tmp_path / "r").glob("*.png"))
    assert figures == ["accuracy_across_problems.png", "time_across_problems.png"]
    assert "Fastest exact strategy over 1000 (problem, size, query) groups" in text
    assert seconds < 120, seconds  # 2,000 cells; about 20 s on a quiet CPU


@pytest.mark.slow
def test_a_report_over_500_sizes_summarises(tmp_path):
    cells = [
        cell(s, size=f"m={m}", query=q)
        for m in range(4, 504)
        for s in ("analytic", "unrolled")
        for q in ("grad", "jvp")
    ]
    seconds, text = timed_report(rows_of(*cells), tmp_path)
    assert "more tables (sizes between each problem's smallest and largest) are left out" in text
    assert seconds < 120, seconds
