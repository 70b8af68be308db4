"""``deqbench.nn.DEQ``: a deep equilibrium layer for torch, exact at every derivative order.

::

    class Cell(torch.nn.Module):          # any module f(z, x) -> z
        ...

    deq = deqbench.nn.DEQ(Cell(), z_init=64)  # 64: zeros of shape (*x.shape[:-1], 64)
    z = deq(x)                                # z = f(z, x), a tensor autograd differentiates

``z`` is the fixed point z*(theta, x) of the module, with theta its ``named_parameters()``.
Every use of autograd on it is exact to the solvers' tolerance at every order: a PINN's
``u_t = torch.autograd.grad(u, t, create_graph=True)``, ``u_xx`` from another such call,
then ``loss.backward()``; ``torch.autograd.functional.jacobian/hessian/jvp/vjp/hvp``;
``torch.func.grad``/``vjp``/``jacrev`` (reverse mode; forward-mode transforms, ``jvp``,
``jacfwd``, ``hessian``, and ``vmap`` are not supported: the layer is a custom
``autograd.Function`` without a forward-mode or batching rule, and its solvers stop on a
residual read on the host).

How: the forward solve runs without a graph; the backward solves ``g = J^T g + u`` with a
solver, without a graph (on a small state, directly: see ``direct_backward``), and the
backward of that linear solve is again a linear solve
(:mod:`deqbench.strategies._implicit_layer`, shared with the `analytic` strategy; the
mathematics: docs/explanations/mathematics.md). Partial derivatives of ``f`` inside the
backward passes are taken on (z, x, parameters) as independent arguments (the parameters
through ``torch.func.functional_call``), so nothing iterates inside the autograd graph:
memory does not grow with iterations at any order.

Buffers and ``train()``/``eval()`` are the module's own: the layer calls it as it is.
Every solve, forward or backward, that stops short of its tolerance warns
(:class:`deqbench.NotConvergedWarning`); :attr:`DEQ.stats` holds the statistics of the
last forward call's solve and of every backward solve made through its output since.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import functional_call

from deqbench.solvers import SOLVERS, Solution, SolverStats, solve
from deqbench.strategies._implicit_layer import fixed_point, warn_if_not_converged
from deqbench.strategies.base import checked_tolerance
from deqbench.tolerances import solver_tol

__all__ = ["DEQ"]

ZInit = int | Callable[[torch.Tensor], torch.Tensor]


class DEQ(torch.nn.Module):
    """z* = f(z*, x) for a module ``f(z, x) -> z``; differentiable exactly at every order.

    Args:
        f: a ``torch.nn.Module`` called as ``f(z, x)``; its parameters are the layer's.
        z_init: the starting state: a callable ``z_init(x) -> tensor``, or an int m for
            zeros of shape ``(*x.shape[:-1], m)`` in x's dtype and device.
        solver, tol, max_iter: the forward solve (``"anderson"`` or ``"fixed_point"``;
            tol None: 1e-10 in float64, 1e-5 in float32, on the worst sample's relative
            residual ``|f(z) - z| / |f(z)|``).
        backward_solver, backward_tol, backward_max_iter: every linear solve of the
            backward passes (plain iteration by default: it contracts at the forward's rate,
            and Anderson saves it almost no steps on the layers deqbench measures).
        direct_backward: with plain iteration as the backward solver and a small state
            (a (batch, m) state with batch x m^2 at most 2^20), solve the backward systems
            of a forward call's output directly where higher orders follow (its first
            backward pass records a graph: ``create_graph=True``, as a PINN's u_t does): J
            per sample is formed once (one batched reverse pass), I - J LU-factored, and
            every solve, at any order, is two triangular solves (exact to rounding;
            statistics name the solver ``dense-lu``). At m = 32 one iterated solve costs
            ~30 autograd calls, forming J one. A plain first-order backward iterates, and a
            layer that couples the samples of a batch is detected and iterated. False:
            always iterate.
    """

    def __init__(
        self,
        f: torch.nn.Module,
        z_init: ZInit,
        *,
        solver: str = "anderson",
        tol: float | None = None,
        max_iter: int = 500,
        backward_solver: str = "fixed_point",
        backward_tol: float | None = None,
        backward_max_iter: int = 500,
        direct_backward: bool = True,
    ):
        super().__init__()
        if not isinstance(f, torch.nn.Module):
            raise TypeError(f"f must be a torch.nn.Module called as f(z, x), got {type(f).__name__}")
        self.f = f
        self.z_init = _checked_z_init(z_init)
        self.solver, self.backward_solver = _checked_solver(solver), _checked_solver(backward_solver)
        self.tol = checked_tolerance("tol", tol)
        self.backward_tol = checked_tolerance("backward_tol", backward_tol)
        self.max_iter = _checked_iterations("max_iter", max_iter)
        self.backward_max_iter = _checked_iterations("backward_max_iter", backward_max_iter)
        self.direct_backward = bool(direct_backward)
        #: What the solves of the last forward call did (SolverStats: phase, iterations,
        #: residual, converged), then every backward solve through its output, in order.
        self.stats: list[SolverStats] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"DEQ input x must be a tensor, got {type(x).__name__}")
        parameters = dict(self.f.named_parameters())
        self.stats = []  # a new list: a backward of an older output appends to that one's
        return fixed_point(_ModuleLayer(self, tuple(parameters), self.stats), x, parameters.values())

    @property
    def last_stats(self) -> SolverStats | None:
        """The statistics of the most recent solve (forward or backward), or None."""
        return self.stats[-1] if self.stats else None

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.z_init, int):
            return torch.zeros(*x.shape[:-1], self.z_init, dtype=x.dtype, device=x.device)
        z0 = self.z_init(x)
        if not isinstance(z0, torch.Tensor):
            raise TypeError(f"z_init(x) must return a tensor, got {type(z0).__name__}")
        return z0.detach()

    def extra_repr(self) -> str:
        return (
            f"solver={self.solver!r}, tol={self.tol}, max_iter={self.max_iter}, "
            f"backward_solver={self.backward_solver!r}, backward_tol={self.backward_tol}, "
            f"backward_max_iter={self.backward_max_iter}, direct_backward={self.direct_backward}"
        )


class _ModuleLayer:
    """What :func:`fixed_point` needs of a layer, for one forward call of a :class:`DEQ`."""

    def __init__(self, deq: DEQ, names: tuple[str, ...], stats: list[SolverStats]):
        self.deq, self.names, self.stats = deq, names, stats

    def f(self, theta_values, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # functional_call: the parameters as independent arguments (what torch.func needs for
        # partial derivatives); buffers not named here are the module's own.
        return functional_call(self.deq.f, dict(zip(self.names, theta_values, strict=True)), (z, x))

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return self.deq.initial_state(x)

    def solve_forward(self, g, z0: torch.Tensor) -> torch.Tensor:
        deq = self.deq
        return self._solve("forward", deq.solver, g, z0, deq.tol, deq.max_iter)

    def solve_backward(self, g, z0: torch.Tensor) -> torch.Tensor:
        deq = self.deq
        return self._solve("backward", deq.backward_solver, g, z0, deq.backward_tol, deq.backward_max_iter)

    def direct_tol(self, z: torch.Tensor) -> float | None:
        """The tolerance of direct backward solves: those replace plain iteration only."""
        if not self.deq.direct_backward or self.deq.backward_solver != "fixed_point":
            return None
        return solver_tol(z.dtype) if self.deq.backward_tol is None else self.deq.backward_tol

    def _solve(self, phase, solver, g, z0, tol, max_iter) -> torch.Tensor:
        return self.checked(_solve_any_shape(solver, g, z0, tol, max_iter, phase))

    def checked(self, solution: Solution) -> torch.Tensor:
        """The solve's answer, its statistics kept and a shortfall warned about."""
        self.stats.append(solution.stats)
        warn_if_not_converged(solution, "deqbench.nn.DEQ")
        return solution.z


def _solve_any_shape(solver, g, z0, tol, max_iter, phase) -> Solution:
    """The solvers judge convergence per sample along the leading dimension; a state with
    none (shape (m,) or ()) is one sample."""
    if z0.dim() >= 2:
        return solve(solver, g, z0, tol=tol, max_iter=max_iter, phase=phase)
    shape = z0.shape
    flat = lambda z: g(z.reshape(shape)).reshape(1, -1)  # noqa: E731
    solution = solve(solver, flat, z0.reshape(1, -1), tol=tol, max_iter=max_iter, phase=phase)
    return Solution(solution.z.reshape(shape), solution.stats)


def _checked_z_init(z_init) -> ZInit:
    if isinstance(z_init, bool) or not (isinstance(z_init, int) or callable(z_init)):
        raise TypeError(
            "z_init must be an int m (zeros of shape (*x.shape[:-1], m)) or a callable "
            f"z_init(x) -> tensor, got {type(z_init).__name__}"
        )
    if isinstance(z_init, int) and z_init < 1:
        raise ValueError(f"z_init as a state width must be >= 1, got {z_init}")
    return z_init


def _checked_solver(name: str) -> str:
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; known: {', '.join(SOLVERS)}")
    return name


def _checked_iterations(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value
