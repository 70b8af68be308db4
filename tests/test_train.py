"""deqbench train: exact strategies train identically, wrong ones drift; a quick run, its
report, kill and resume, bad input; the MLP baseline and JAX's new-parameter path.

Everything runs at the quick size (vanderpol m=8, 8 collocation points) on one thread; the
whole module takes well under a minute on 2 cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import wait_until

import deqbench
from deqbench.harness.cli.main import main
from deqbench.harness.results import RunFolder
from deqbench.harness.train import CHECKPOINTS_DIR, flat, load_trajectory, train

EXACT = ["analytic", "iterative-backward", "unrolled"]
QUICK = dict(quick=True, threads=1)


def final_theta(folder: Path, strategy: str, problem: str = "vanderpol", seed: int = 0) -> torch.Tensor:
    trajectory = load_trajectory(RunFolder(folder), f"train/{strategy}/{problem}/seed={seed}")
    return flat(trajectory["theta"][-1])


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ------------------------------------------------------------ verification
def test_exact_strategies_agree_to_1e6_after_50_steps(tmp_path):
    """Exact strategies train alike: float64, 50 Adam steps from the same start; the strategies that claim
    an exact physics-loss gradient end at the same parameters (to 1e-6 relative)."""
    out = tmp_path / "agree"
    rows = train(",".join(EXACT), "vanderpol", out=out, steps=50, eval_every=50, no_mlp=True, **QUICK)
    assert set(rows["status"]) == {"ok"}
    reference = final_theta(out, "analytic")
    start = flat(load_trajectory(RunFolder(out), "train/analytic/vanderpol/seed=0")["theta"][0])
    assert relative(reference, start) > 1e-2  # the parameters did move
    for strategy in EXACT[1:]:
        assert relative(final_theta(out, strategy), reference) < 1e-6, strategy


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`deqbench train --quick`: the four strategies and the MLP, 5 steps, one seed."""
    out = tmp_path_factory.mktemp("train") / "quick"
    result = CliRunner().invoke(main, ["train", "--quick", "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_quick_run_records_every_metric_of_every_step(quick_run):
    out, output = quick_run
    rows = RunFolder(out).read()
    assert set(rows["strategy"]) == {*EXACT, "implicit-vjp", "mlp-pinn"}
    deq = rows[(rows["strategy"] == "analytic")]
    per_step = deq[deq["step"] < 5].groupby("metric")["step"].nunique()
    for metric in ("loss", "loss:residual", "loss:initial_condition", "step_time", "peak_rss_bytes",
                   "forward_iterations", "backward_iterations", "test_error"):  # fmt: skip
        assert per_step[metric] == 5, metric
    loss = deq[deq["step"] < 5].pivot_table(index="step", columns="metric", values="value")
    total = loss["loss:residual"] + loss["loss:initial_condition"]
    assert torch.allclose(torch.tensor(total.values), torch.tensor(loss["loss"].values))
    assert "time to target" in output and "mlp-pinn" in output


def test_wrong_gradient_drifts_while_exact_ones_do_not(quick_run):
    out, _ = quick_run
    reference = final_theta(out, "analytic")
    assert relative(final_theta(out, "unrolled"), reference) < 1e-9
    assert relative(final_theta(out, "implicit-vjp"), reference) > 1e-4


def test_report_of_a_training_run(quick_run, tmp_path):
    out, _ = quick_run
    report = tmp_path / "report"
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(report), "--format", "png"])
    assert result.exit_code == 0, result.output
    for name in ("train_loss_vanderpol", "train_test_error_vanderpol", "train_drift_vanderpol"):
        assert (report / f"{name}.png").stat().st_size > 10_000, name
    markdown = (report / "report.md").read_text()
    assert "## Final table" in markdown and "`implicit-vjp`" in markdown and "(reference)" in markdown
    assert "data:image/png;base64," in (report / "report.html").read_text()


def test_export_of_a_training_run_reports_too(quick_run, tmp_path):
    out, _ = quick_run
    csv = tmp_path / "rows.csv"
    assert CliRunner().invoke(main, ["export", str(out), "--csv", "-o", str(csv)]).exit_code == 0
    result = CliRunner().invoke(main, ["report", str(csv), "--out", str(tmp_path / "r"), "--format", "svg"])
    assert result.exit_code == 0, result.output
    assert "left out" in result.output  # no trajectories next to an export: no drift figure


# ------------------------------------------------------------ kill and resume
def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_uninterrupted_one_does(tmp_path):
    args = [
        "-s",
        "unrolled",
        "--no-mlp",
        "--quick",
        "--threads",
        "1",
        "--steps",
        "24",
        "--checkpoint-every",
        "4",
    ]
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "deqbench.harness.cli.main", "train", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoints = killed / CHECKPOINTS_DIR
    wait_until(lambda: checkpoints.is_dir() and any(checkpoints.glob("*.pt")), timeout=120)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not RunFolder(killed).finished()
    result = CliRunner().invoke(main, ["train", "--resume", str(killed)])
    assert result.exit_code == 0, result.output
    rows = RunFolder(killed).read()
    steps = rows[rows["metric"] == "loss"]["step"]
    assert sorted(steps) == list(range(24))  # each step once, none lost or repeated
    whole = tmp_path / "whole"
    assert CliRunner().invoke(main, ["train", *args, "--out", str(whole)]).exit_code == 0
    assert torch.equal(final_theta(killed, "unrolled"), final_theta(whole, "unrolled"))
    assert not any(checkpoints.glob("*.pt"))


# ------------------------------------------------------------------ bad input
BAD = {
    "unknown strategy": (["-s", "nope"], "unknown strategy 'nope'"),
    "unknown problem": (["-p", "nope"], "unknown problem 'nope'"),
    "zero steps": (["--steps", "0"], "--steps 0: accepted: an integer >= 1"),
    "no physics loss": (["-p", "digits"], "problem 'digits' has no physics loss to train on; accepted:"),
    "strategy without pinn_grad": (
        ["-s", "analytic-seed"],
        "cannot train here: it does not support pinn_grad",
    ),
    "negative data weight": (
        ["--data-weight", "-1"],
        "--data-weight -1: accepted: a number, finite and >= 0",
    ),
    "bad learning rate": (["--lr", "0"], "--lr 0: accepted: a number, finite and > 0"),
    "unknown dtype": (["--dtype", "float16"], "accepted: float64, float32"),
}


@pytest.mark.parametrize("args, message", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, message):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_resume_of_a_folder_that_is_not_a_training_run(tmp_path):
    RunFolder(tmp_path / "run").create({"run_id": "r", "settings": {}, "cells": []})  # as deqbench run's
    result = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "run")])
    assert result.exit_code == 2 and "not a training one" in result.output


# ------------------------------------------------------------------ models
def test_physics_terms_sum_to_the_physics_loss():
    from deqbench.harness.references import resolve_class
    from deqbench.harness.train import physics_problems
    from deqbench.problems.base import PROBLEMS

    # A user's file loaded earlier in the process (as test_reliability does, sometimes in
    # the same worker) registers its classes too: deqbench's problems only, here.
    mistaken = Path(__file__).parent / "fixtures" / "mistaken_problems.py"
    assert resolve_class(f"{mistaken}:FourthOrder", "problem").name in PROBLEMS.names()
    assert "mistaken-fourth-order" not in physics_problems()

    for name in physics_problems():
        problem = PROBLEMS.get(name)("quick")
        loss, specs = problem.physics_query("pinn_grad")
        z = torch.rand(problem.batch, problem.m, dtype=problem.dtype)
        d = {key: torch.rand_like(z) for key in specs}
        terms = problem.physics_terms(problem.theta, problem.x, z, d)
        assert torch.allclose(sum(terms.values()), loss(problem.theta, problem.x, z, d)), name


def test_the_mlp_baseline_has_the_deqs_size_and_exact_partials():
    from deqbench.harness.train import MlpPinn
    from deqbench.problems.base import PROBLEMS

    problem = PROBLEMS.get("vanderpol")("default")
    model = MlpPinn(problem, 0.0, seed=0)
    theta = model.initial_theta()
    count = lambda t: sum(v.numel() for v in t.values())  # noqa: E731
    assert count(theta) - count(problem.theta) == problem.m  # one more bias
    h = 1e-6
    e = problem.directions["t"]
    difference = (model.state(theta, problem.x + h * e) - model.state(theta, problem.x - h * e)) / (2 * h)
    assert torch.allclose(model.partial(theta, problem.x, ("t",)), difference, atol=1e-8)


@pytest.mark.parametrize("problem", ["fourtanks", "inr", "burgers1d", "mongeampere2d"])
def test_other_physics_problems_train(tmp_path, problem):
    rows = train("analytic", problem, out=tmp_path / problem, steps=2, **QUICK)
    assert set(rows["status"]) == {"ok"}, rows["message"].unique()
    assert set(rows["strategy"]) == {"analytic", "mlp-pinn"}


def test_jax_strategies_take_new_parameters_without_a_recompile():
    pytest.importorskip("jax")
    import deqbench
    from deqbench.harness.train import as_torch

    problem = deqbench.get_problem("vanderpol", "quick")
    strategy = deqbench.get_strategy("jax-analytic")
    strategy.run("pinn_grad", problem)
    compiled = dict(strategy._compiled)
    moved = {k: v + 0.01 * torch.ones_like(v) for k, v in problem.theta.items()}
    answer = as_torch(strategy.run_with("pinn_grad", problem, moved).values, moved["B"])
    assert strategy._compiled == compiled  # the same executable
    problem.theta = moved
    torch_answer = deqbench.query("analytic", problem, "pinn_grad").values
    for name, value in torch_answer.items():
        assert torch.allclose(answer[name], value, rtol=1e-8, atol=1e-12), name


@pytest.mark.parametrize("peer", ["torchdeq-ift", "jaxopt-implicit"])
def test_peer_strategies_train_where_they_answer_the_physics_gradient(tmp_path, peer):
    reason = deqbench.STRATEGIES.get(peer).unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    rows = train(peer, "vanderpol", out=tmp_path / peer, steps=2, **QUICK)
    assert set(rows["status"]) == {"ok"}, rows["message"].unique()
    assert peer in set(rows["strategy"])


def test_training_from_python_gives_the_process_its_threads_and_cpus_back(tmp_path):
    """Training measures on one thread and one CPU (--threads 1) in the caller's process; a
    Python session that trains goes on with its own thread count and CPUs afterwards."""
    import os

    threads, cpus = torch.get_num_threads(), os.sched_getaffinity(0)
    train("analytic", "vanderpol", out=tmp_path / "run", steps=2, **QUICK)  # QUICK: --threads 1
    assert torch.get_num_threads() == threads and os.sched_getaffinity(0) == cpus
