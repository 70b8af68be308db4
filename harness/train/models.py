"""The models `deqbench train` trains: a DEQ through a strategy's gradient, and a plain PINN.

Both answer the same three questions, so the training loop (:mod:`.train`) treats them alike:

- ``initial_theta()``: the starting parameters (a dict of tensors, the same per seed for
  every strategy: the problem instance's own ``theta``);
- ``gradient(theta)``: the gradient of the training loss ``data_weight * data_loss +
  physics_loss`` at ``theta`` (the physics loss holds the initial-condition term where the
  problem has one), with the statistics of the solves behind it; this is what a step times;
- ``loss_terms(theta)``: the loss terms at ``theta``, each by name, read after the timed
  part of the step; and ``test_error(theta, test_problem)``.

:class:`DeqModel` asks a deqbench strategy for ``pinn_grad`` (and ``grad`` when the data
term is weighted) on the problem instance at the current parameters. The loss values come
from the strategy's own evaluation of the losses: the problem's loss methods are wrapped
to keep their last arguments (z*, its partials), from which the terms are computed after
the timed part. JAX strategies evaluate the losses inside compiled code; their terms are
computed by a torch ``analytic`` pass at the same parameters, outside the timed part.

:class:`MlpPinn` is the baseline of the PIDEQ work: a plain PINN, ``z(x) = tanh(W2 tanh(W1
x + b1) + b2)`` (both layers m wide) under the problem's own head and losses, its input
partials by nested forward mode (``torch.func.jvp``) and the gradient by reverse mode. Its
parameter count is the DEQ's plus m: W1 and W2 take the places of A and B, with one more bias.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.func import jvp

from deqbench.problems.base import Problem, Theta
from deqbench.solvers import solve
from deqbench.tolerances import solver_tol

#: The name the MLP baseline's rows carry in the ``strategy`` column.
MLP_NAME = "mlp-pinn"


@dataclass
class Gradient:
    """One step's gradient and what its solves cost (empty for models without solves)."""

    values: Theta
    solver: dict[str, float] = field(default_factory=dict)


def as_torch(values: dict[str, Any], like: torch.Tensor) -> Theta:
    """A dict of arrays (JAX or torch) as torch tensors of ``like``'s dtype and device."""
    return {
        name: torch.as_tensor(np.array(v) if not isinstance(v, torch.Tensor) else v).to(like)
        for name, v in values.items()
    }


def detached(theta: Theta) -> Theta:
    return {name: t.detach() for name, t in theta.items()}


def rms_error(problem: Problem, theta: Theta, z: torch.Tensor) -> float:
    """The root of the problem's data loss: on vanderpol and fourtanks, the root mean square
    distance of the model's output from the ODE reference at the problem's points."""
    return math.sqrt(max(float(problem.data_loss(theta, problem.x, z)), 0.0))


# ------------------------------------------------------------------ losses
class LossCapture:
    """Wraps a torch problem instance's ``physics_loss`` and ``data_loss`` to keep the
    (detached) arguments of their last call: the strategy's own z* and partials."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.calls: dict[str, tuple] = {}
        self.physics = problem.physics_loss
        self.data = problem.data_loss
        problem.physics_loss = self._keeping("physics", self.physics)
        problem.data_loss = self._keeping("data", self.data)

    def _keeping(self, name, loss):
        def wrapped(theta, x, z, *rest):
            self.calls[name] = (detached(theta), x.detach(), z.detach(), *map(_detach_tree, rest))
            return loss(theta, x, z, *rest)

        return wrapped

    def clear(self) -> None:
        self.calls.clear()

    def terms(self) -> dict[str, float]:
        """The loss terms of the last calls: the physics loss's named terms, and ``data``."""
        terms = {}
        with torch.no_grad():
            if "physics" in self.calls:
                split = self.problem.physics_terms(*self.calls["physics"])
                terms.update({name: float(value) for name, value in split.items()})
            if "data" in self.calls:
                terms["data"] = float(self.data(*self.calls["data"]))
        return terms


def _detach_tree(value):
    if isinstance(value, dict):
        return {k: v.detach() for k, v in value.items()}
    return value.detach()


# --------------------------------------------------------------------- DEQ
class DeqModel:
    """The problem's DEQ, trained with one strategy's gradients."""

    def __init__(self, strategy, problem: Problem, data_weight: float):
        self.strategy, self.problem, self.data_weight = strategy, problem, data_weight
        self.jax = strategy.backend == "jax"
        if self.jax:
            problem.for_backend("jax")  # its clean JAX copy, made before the losses are wrapped
            self.evaluator = None  # the torch pass that gives JAX cells their loss terms
        self.capture = LossCapture(problem)
        self.queries = ["pinn_grad"] + (["grad"] if data_weight else [])

    def initial_theta(self) -> Theta:
        return {name: t.detach().clone() for name, t in self.problem.theta.items()}

    def compile(self) -> float | None:
        """Compile a JAX strategy's queries (seconds), before the first timed step."""
        if not self.jax:
            return None
        return sum(self.strategy.compile(query, self.problem).seconds for query in self.queries)

    def _query(self, query: str, theta: Theta):
        if self.jax:
            return self.strategy.run_with(query, self.problem, theta)
        self.problem.theta = theta
        return self.strategy.run(query, self.problem)

    def gradient(self, theta: Theta) -> Gradient:
        self.capture.clear()
        first = next(iter(theta.values()))
        physics = self._query("pinn_grad", theta)
        values, solves = as_torch(physics.values, first), list(physics.solves)
        if self.data_weight:
            data = self._query("grad", theta)
            solves += data.solves
            values = {
                k: v + self.data_weight * g
                for (k, v), g in zip(values.items(), as_torch(data.values, first).values(), strict=True)
            }
        return Gradient(values, solver_summary(solves))

    def loss_terms(self, theta: Theta) -> dict[str, float]:
        if self.jax:
            self._evaluate_in_torch(theta)
        return self.capture.terms()

    def _evaluate_in_torch(self, theta: Theta) -> None:
        from deqbench.strategies.base import STRATEGIES

        if self.evaluator is None:
            self.evaluator = STRATEGIES.get("analytic")(**self.strategy.tolerances(self.problem.dtype))
        self.problem.theta = theta
        for query in self.queries:
            self.evaluator.run(query, self.problem)

    def test_error(self, theta: Theta, test: Problem) -> float:
        tol = solver_tol(test.dtype)
        with torch.no_grad():
            solution = solve(
                "anderson",
                lambda z: test.f(theta, test.x, z),
                test.z_init(),
                tol=tol,
                max_iter=1000,
                phase="forward",
            )
            return rms_error(test, theta, solution.z)


def solver_summary(solves) -> dict[str, float]:
    """Iterations of the step's forward and backward solves, and whether all converged."""
    forward = [s for s in solves if s.phase == "forward"]
    backward = [s for s in solves if s.phase == "backward"]
    return {
        "forward_iterations": float(sum(s.iterations for s in forward)),
        "backward_iterations": float(sum(s.iterations for s in backward)),
        "converged": float(all(s.converged for s in solves)),
    }


# --------------------------------------------------------------------- MLP
def head_keys(problem: Problem) -> list[str]:
    """The parameters the problem's output head reads (``C`` and ``c`` on vanderpol)."""
    theta = {name: t.detach().clone().requires_grad_(True) for name, t in problem.theta.items()}
    z = torch.zeros(1, problem.m, dtype=problem.dtype, device=problem.device)
    with torch.enable_grad():
        out = problem.output(theta, z)
    if not out.requires_grad:
        return []
    grads = torch.autograd.grad(out.sum(), list(theta.values()), allow_unused=True)
    return [name for name, g in zip(theta, grads, strict=True) if g is not None]


class MlpPinn:
    """A plain PINN with the DEQ's state width, head and losses (the PIDEQ work's baseline)."""

    def __init__(self, problem: Problem, data_weight: float, seed: int):
        self.problem, self.data_weight = problem, data_weight
        m, n = problem.m, problem.n
        generator = torch.Generator().manual_seed(seed)
        head = {name: problem.theta[name].detach().clone() for name in head_keys(problem)}
        self.theta0 = {
            "mlp_W1": problem.randn(generator, m, n) / math.sqrt(n),
            "mlp_b1": torch.zeros(m, dtype=problem.dtype, device=problem.device),
            "mlp_W2": problem.randn(generator, m, m) / math.sqrt(m),
            "mlp_b2": torch.zeros(m, dtype=problem.dtype, device=problem.device),
            **head,
        }
        self.physics_loss, self.specs = problem.physics_query("pinn_grad")
        self.last_terms: dict[str, float] = {}

    def initial_theta(self) -> Theta:
        return {name: t.clone() for name, t in self.theta0.items()}

    def compile(self) -> None:
        return None

    @staticmethod
    def state(theta: Theta, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(x @ theta["mlp_W1"].T + theta["mlp_b1"])
        return torch.tanh(hidden @ theta["mlp_W2"].T + theta["mlp_b2"])

    def partial(self, theta: Theta, x: torch.Tensor, index: tuple[str, ...]) -> torch.Tensor:
        """d^k z / d e_1 .. d e_k along the directions the multi-index names (nested jvp)."""
        if not index:
            return self.state(theta, x)
        e = self.problem.directions[index[-1]].expand_as(x)
        return jvp(lambda x_: self.partial(theta, x_, index[:-1]), (x,), (e,))[1]

    def losses(self, theta: Theta) -> dict[str, torch.Tensor]:
        x = self.problem.x
        z = self.state(theta, x)
        d = {name: self.partial(theta, x, index) for name, index in self.specs.items()}
        terms = dict(self.problem.physics_terms(theta, x, z, d))
        if self.data_weight:
            terms["data"] = self.problem.data_loss(theta, x, z)
        return terms

    def gradient(self, theta: Theta) -> Gradient:
        leaves = {name: t.detach().requires_grad_(True) for name, t in theta.items()}
        terms = self.losses(leaves)
        data = terms.get("data", 0.0)
        total = sum(v for k, v in terms.items() if k != "data") + self.data_weight * data
        grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True, materialize_grads=True)
        self.last_terms = {name: float(value.detach()) for name, value in terms.items()}
        return Gradient(dict(zip(leaves, grads, strict=True)))

    def loss_terms(self, theta: Theta) -> dict[str, float]:
        return self.last_terms

    def test_error(self, theta: Theta, test: Problem) -> float:
        with torch.no_grad():
            return rms_error(test, theta, self.state(theta, test.x))
