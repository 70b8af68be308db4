"""`--oracle torch|jax|both`: cells graded against two oracles that share no code.

With both, each cell carries its errors against each oracle and the oracles' disagreement;
oracles that disagree make the cell an error, whatever the strategy answered.
"""

import numpy as np
import pytest

import deqbench
from deqbench.harness.options import BadInput
from deqbench.harness.results import Status
from deqbench.harness.run import ORACLES_AGREE_TOL, OracleResult, judge_against, make_settings
from deqbench.harness.worker import MEASURED, Measurement

TRUTH = np.linspace(1.0, 2.0, 6).reshape(2, 3)


def measured(values) -> Measurement:
    totals = {"forward_converged": 1.0, "backward_converged": 1.0}
    return Measurement(MEASURED, values={"dz_dt": values}, solver_totals=totals, times=[0.1])


def oracle(values) -> OracleResult:
    return OracleResult(values={"dz_dt": values}, error_estimate={"dz_dt": 1e-12}, method="test")


def metric(verdict, name):
    return next(m.value for m in verdict.metrics if m.name == name and m.output == "")


def test_agreeing_oracles_grade_the_cell_and_report_their_disagreement():
    nearly = TRUTH * (1 + 1e-13)
    verdict = judge_against(measured(TRUTH), {"torch": oracle(TRUTH), "jax": oracle(nearly)}, 1e-6)
    assert verdict.status == Status.OK
    assert metric(verdict, "relative_error") == 0.0
    assert 0 < metric(verdict, "relative_error_jax") < 1e-12
    assert 0 < metric(verdict, "oracle_disagreement") <= ORACLES_AGREE_TOL


def test_disagreeing_oracles_are_an_error_even_when_the_strategy_matches_one():
    off = TRUTH * (1 + 1e-7)
    verdict = judge_against(measured(TRUTH), {"torch": oracle(TRUTH), "jax": oracle(off)}, 1e-6)
    assert verdict.status == Status.ERROR
    assert "the torch and jax oracles disagree" in verdict.message and "dz_dt" in verdict.message


def test_wrong_against_the_second_oracle_only_is_still_wrong():
    # The oracles agree to 5e-11, within their tolerance; the answer sits right at the
    # verification tolerance of the first and just past it against the second.
    tol = 1e-10
    first, second = TRUTH, TRUTH * (1 + 5e-11)
    answer = TRUTH * (1 - 0.9 * tol)
    verdict = judge_against(measured(answer), {"torch": oracle(first), "jax": oracle(second)}, tol)
    assert verdict.status == Status.WRONG
    assert verdict.message.startswith("against the jax oracle:")


def test_one_oracle_alone_is_the_plain_verdict():
    verdict = judge_against(measured(TRUTH * 1.1), {"jax": oracle(TRUTH)}, 1e-6)
    assert verdict.status == Status.WRONG
    assert not [m for m in verdict.metrics if m.name.endswith("_jax") or m.name == "oracle_disagreement"]


def test_an_unknown_oracle_choice_is_refused_with_the_accepted_ones():
    with pytest.raises(BadInput, match="unknown --oracle 'numpy'; accepted: torch, jax, both"):
        make_settings(oracle="numpy")
    assert make_settings(oracle="both").oracle_frameworks == ("torch", "jax")


@pytest.mark.parametrize("choice", ["jax", "both"])
def test_a_run_graded_by_the_jax_oracle(tmp_path, choice):
    rows = deqbench.run(
        ["analytic", "jax-analytic"],
        "tanh",
        ["jvp", "pinn_grad"],
        out=tmp_path / choice,
        quick=True,
        oracle=choice,
        progress=False,
    )
    cells = rows.drop_duplicates("cell").set_index("cell")
    assert set(cells["status"]) == {"ok"}, cells[["status", "message"]]
    assert set(cells["oracle"]) == {choice}
    assert dict(zip(cells["strategy"], cells["backend"], strict=True)) == {
        "analytic": "torch",
        "jax-analytic": "jax",
    }
    assert (rows["jax_version"] != "").all()
    metrics = set(rows["metric"])
    if choice == "both":
        disagreement = rows[rows["metric"] == "oracle_disagreement"]["value"]
        assert len(disagreement) == 4 and (disagreement <= ORACLES_AGREE_TOL).all()
        assert "relative_error_jax" in metrics
    jax_rows = rows[rows["backend"] == "jax"]
    compile_times = jax_rows[jax_rows["metric"] == "compile_time"]["value"]
    assert len(compile_times) == 2 and (compile_times > 0).all()
    assert "compile_time" not in set(rows[rows["backend"] == "torch"]["metric"])
