"""The Markdown and ratio reports read a run folder's rows."""

import pytest

import deqbench
from deqbench.harness.report import error_tables, ratio_table, side_by_side_table
from deqbench.harness.results import RunFolder


@pytest.fixture(scope="module")
def run_rows(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "r"
    deqbench.run(
        "analytic,unrolled,analytic-seed", "tanh", "jvp2,pinn_grad", quick=True, repeats=1, out=folder
    )
    return RunFolder(folder).read()


def cells_of(line: str) -> list[str]:
    """The cells of a Markdown table line, stripped."""
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_error_tables_show_every_strategy_and_query_with_unsupported_marked(run_rows):
    table = error_tables(run_rows)
    assert table.startswith("**tanh (m=8,n=3,batch=4,rho=0.8)**")
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| strategy"))
    assert cells_of(header) == ["strategy", "jvp2", "pinn_grad"]
    seed_row = cells_of(next(line for line in lines if line.startswith("| `analytic-seed`")))
    assert float(seed_row[1]) > 1e-4 and seed_row[2] == "—"


def test_side_by_side_table_has_a_line_per_query_size_and_strategy_in_run_order(run_rows):
    lines = side_by_side_table(run_rows).splitlines()
    assert cells_of(lines[0])[:4] == ["query", "m", "strategy", "median time (no compile)"]
    body = [cells_of(line) for line in lines[2:]]
    assert [(cells[0], cells[2]) for cells in body] == [
        ("jvp2", "`analytic`"), ("jvp2", "`unrolled`"), ("jvp2", "`analytic-seed`"),
        ("pinn_grad", "`analytic`"), ("pinn_grad", "`unrolled`"), ("pinn_grad", "`analytic-seed`"),
    ]  # fmt: skip
    seed_pinn = body[-1]
    assert seed_pinn[1] == "8" and seed_pinn[-1] == "unsupported" and seed_pinn[3] == "—"
    seed_jvp2 = body[2]
    assert seed_jvp2[-1] == "wrong" and float(seed_jvp2[6]) > 1e-4 and seed_jvp2[3].endswith(" ms")


def test_ratios_divide_the_reference_by_each_other_strategy(run_rows):
    ratios = ratio_table(run_rows, "analytic")
    value = ratios["value"].loc[("tanh", "pinn_grad", "time_median")]
    ratio = ratios["analytic / strategy"].loc[("tanh", "pinn_grad", "time_median"), "unrolled"]
    assert ratio == pytest.approx(value["analytic"] / value["unrolled"])


def test_ratios_name_a_missing_reference(run_rows):
    with pytest.raises(SystemExit, match="strategy 'implicit-vjp' is not in this run"):
        ratio_table(run_rows, "implicit-vjp")
