"""A fixed point as a differentiable torch function, exact at every order.

:func:`fixed_point(layer, x, theta_values) <fixed_point>` returns z* as a tensor autograd
can differentiate as often as it likes, for any ``layer`` that provides ``f(theta_values,
x, z)`` (theta_values: a tuple of tensors), ``initial_state(x)`` and ``solve_forward(g, z0)``
/ ``solve_backward(g, z0)`` (tensors out, warning where a solve falls short). Two layers use
it: :class:`ImplicitLayer` (the `analytic` strategy on a deqbench Problem:
``ImplicitLayer(strategy, problem)(theta, x)``) and the public :class:`deqbench.nn.DEQ`
around a user's module. Its backward is a linear fixed-point solve with J^T,
and the backward of every linear solve is again a linear solve (with the other of J, J^T),
so a second, third ... backward pass is implicit too. Nothing iterates inside the graph.

With A = J (a tangent solve) or A = J^T (an adjoint solve), y = A y + rhs gives, for an
incoming cotangent c,

    d rhs  <-  r = (I - A^T)^{-1} c          (a solve with the other operator)
    d p    <-  d/dp <r, A(p) y>              (p: theta, x, z; r and y stay differentiable)

Partial derivatives inside the backward passes treat z, x and theta as independent
arguments: plain autograd.grad by theta itself would follow z back to theta through this
very Function (a total derivative, and an endless recursion). So f is evaluated on
*aliases*, views of z, x and theta (:func:`_aliases`), and differentiated by those: a
path through an alias is the only one counted, and the answer stays connected to z, x and
theta for the next order. Inside a user's torch.func transform, which refuses that, the
partials come from torch.func (about twice as slow on the PINN queries). This is how
gradcheck/gradgradcheck verify `analytic`, and how a user trains with it.

Every solve, forward or in a backward pass, warns (:class:`deqbench.NotConvergedWarning`)
when it stops short of its tolerance, as ``deqbench.query`` does: a layer used for training
has no result object to carry a converged flag. :class:`ImplicitLayer` keeps no statistics
of its own, so a long training run does not accumulate them.
"""

from __future__ import annotations

import warnings

import torch
from torch._C._functorch import maybe_current_level
from torch.func import grad, jvp, vjp

from deqbench.queries import NotConvergedWarning
from deqbench.solvers import Solution
from deqbench.strategies._linearization import (
    DENSE_MAX_ENTRIES,
    DenseSolve,
    Linearization,
    grad_retained,
    grad_with_graph,
)


def _aliases(arguments):
    """Each argument as a tensor of its own to differentiate by: a view (still connected to
    the argument, so what is computed from it stays differentiable at the next order) where
    the argument has a graph, a fresh leaf where it has none. Derivatives by an alias follow
    only the paths through that alias: partial, not total, derivatives of f, although z
    itself depends on theta and x."""
    return [a.view_as(a) if a.requires_grad else a.detach().requires_grad_(True) for a in arguments]


def _reverse(output, wrt, cotangent=None):
    """<cotangent, d output / d wrt>, with a graph where the backward pass records one."""
    if torch.is_grad_enabled():  # the caller's create_graph: differentiable again
        return grad_with_graph(output, wrt, cotangent)
    return grad_retained(output, wrt, cotangent)


def _in_torch_func() -> bool:
    """Inside a torch.func transform (a user's torch.func.grad of the layer), where plain
    autograd on fresh leaves is refused: partials by torch.func there."""
    return maybe_current_level() is not None


def _partial_vjp(layer, arguments, cotangent):
    """Partial vjp of f(theta, x, z) w.r.t. each of (z, x, *theta_values), independently."""
    if _in_torch_func():
        _, vjp_fn = vjp(lambda z_, x_, *theta_: layer.f(theta_, x_, z_), *arguments)
        return vjp_fn(cotangent)
    records_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        z_, x_, *theta_ = aliases = _aliases(arguments)
        out = layer.f(tuple(theta_), x_, z_)
        with torch.set_grad_enabled(records_graph):
            return _reverse(out, aliases, cotangent)


def _bilinear_partials(layer, arguments, left, right):
    """Partials of <left, J(z, x, theta) right> = <J^T left, right> w.r.t. (z, x,
    *theta_values)."""
    if _in_torch_func():

        def bilinear(z_, x_, *theta_):
            return (left * jvp(lambda zz: layer.f(theta_, x_, zz), (z_,), (right,))[1]).sum()

        return grad(bilinear, argnums=tuple(range(len(arguments))))(*arguments)
    records_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        z_, x_, *theta_ = aliases = _aliases(arguments)
        (transposed,) = grad_with_graph(layer.f(tuple(theta_), x_, z_), [z_], left)
        pairing = (transposed * right).sum()
        with torch.set_grad_enabled(records_graph):
            return _reverse(pairing, aliases)


class _Solves:
    """The linear solves of one fixed point, at every order: they all step with J at the same
    (z*, x, theta), so where the layer allows direct solves (``layer.direct_tol(z)`` is a
    tolerance: plain iteration as its backward solver) and the state is small (batch x m^2
    at most ``DENSE_MAX_ENTRIES``), J per sample is formed and LU-factored once
    (:class:`~deqbench.strategies._linearization.DenseSolve`) and every solve after it, of any
    backward pass, is two triangular solves: at m = 32 one solve of ~30 plain steps costs ~30
    autograd engine calls, forming J one batched call. That pays only where several solves
    follow, so the choice is made at the first solve, once for all of them: direct where
    that solve's backward pass records its own graph (``create_graph``: higher orders
    ahead), iterated for a plain first-order backward (measured on heat1d and burgers1d,
    m = 32: a gradient 7-17% slower with the factors, a PINN gradient 1.5x faster). Made
    once, so a backward run twice gives the same digits twice (gradcheck's reentrancy
    check)."""

    def __init__(self, layer):
        self.layer = layer
        self._dense: DenseSolve | None = None
        self._chosen = False  # direct or iterated: decided by the first solve
        self._higher_orders = False  # the first backward pass records its own graph

    def first_backward(self, records_graph: bool) -> None:
        """Told by the fixed point's backward before each of its solves; the first says
        whether higher orders follow (its pass records a graph: ``create_graph``)."""
        if not self._chosen:
            self._higher_orders = records_graph

    def linearization(self, z, x, theta_values) -> Linearization:
        """f's graph at the fixed point, recorded once per solve and reused by every step:
        J^T v is a reverse pass over it, J v a reverse pass over that pass's own graph."""
        layer = self.layer
        theta = {str(i): t.detach() for i, t in enumerate(theta_values)}
        f = lambda th, x_, z_: layer.f(tuple(th.values()), x_, z_)  # noqa: E731
        return Linearization(f, theta, x.detach(), z.detach())

    def solve(self, transpose: bool, rhs, z, x, theta_values) -> torch.Tensor:
        """y = A y + rhs, A = J (transpose False) or J^T, without a graph."""
        rhs = rhs.detach()
        dense = self.dense(z, x, theta_values)
        if dense is not None:
            with torch.no_grad():
                y, stats = dense.solve(rhs, transpose, self.layer.direct_tol(z))
            return self.layer.checked(Solution(y, stats))
        linear = self.linearization(z, x, theta_values)
        apply_a = linear.vjp if transpose else linear.jvp
        with torch.no_grad():
            return self.layer.solve_backward(lambda v: apply_a(v) + rhs, rhs)

    def dense(self, z, x, theta_values) -> DenseSolve | None:
        """The factors of I - J, formed on the first solve where direct solves apply."""
        if not self._chosen:
            self._chosen = True
            tol = self.layer.direct_tol(z)
            if self._higher_orders and tol is not None and small_state(z):
                linear = self.linearization(z, x, theta_values)
                self._dense, _ = DenseSolve.of(linear, max(tol, 1e3 * torch.finfo(z.dtype).eps))
        return self._dense


def small_state(z: torch.Tensor) -> bool:
    """A (batch, m) state whose per-sample Jacobians fit in DENSE_MAX_ENTRIES numbers."""
    return z.dim() == 2 and z.shape[0] * z.shape[1] ** 2 <= DENSE_MAX_ENTRIES


class _LinearSolve(torch.autograd.Function):
    """y = A y + rhs, A = J (transpose False) or J^T (transpose True), solved without a graph.

    Written with ``setup_context`` (not ``forward(ctx, ...)``) so that torch.func's reverse
    transforms (``grad``, ``vjp``, ``jacrev``) may call it as well as plain autograd.
    """

    @staticmethod
    def forward(solves, transpose, rhs, z, x, *theta_values):
        return solves.solve(transpose, rhs, z, x, theta_values)

    @staticmethod
    def setup_context(ctx, inputs, output):
        solves, transpose, _, z, x, *theta_values = inputs
        ctx.solves, ctx.transpose = solves, transpose
        ctx.save_for_backward(output, z, x, *theta_values)

    @staticmethod
    def backward(ctx, c):
        y, z, x, *theta_values = ctx.saved_tensors
        solves, transpose = ctx.solves, ctx.transpose
        r = _LinearSolve.apply(solves, not transpose, c, z, x, *theta_values)
        # <r, A y> is <r, J y> for A = J and <y, J r> for A = J^T.
        left, right = (y, r) if transpose else (r, y)
        partials = _bilinear_partials(solves.layer, (z, x, *theta_values), left, right)
        return (None, None, r, *partials)


class _FixedPoint(torch.autograd.Function):
    @staticmethod
    def forward(layer, x, *theta_values):
        with torch.no_grad():
            x_, theta = x.detach(), tuple(t.detach() for t in theta_values)
            return layer.solve_forward(lambda z: layer.f(theta, x_, z), layer.initial_state(x_))

    @staticmethod
    def setup_context(ctx, inputs, output):
        layer, x, *theta_values = inputs
        ctx.solves = _Solves(layer)  # every backward solve of this fixed point, at any order
        ctx.save_for_backward(output, x, *theta_values)  # the output: differentiable in backward

    @staticmethod
    def backward(ctx, u):
        z, x, *theta_values = ctx.saved_tensors  # z is this Function's output: differentiable
        ctx.solves.first_backward(records_graph=torch.is_grad_enabled())
        g = _LinearSolve.apply(ctx.solves, True, u, z, x, *theta_values)
        _, *partials = _partial_vjp(ctx.solves.layer, (z, x, *theta_values), g)
        return (None, *partials)


def fixed_point(layer, x: torch.Tensor, theta_values) -> torch.Tensor:
    """z* of ``layer`` at (x, theta_values), differentiable at every order (module doc)."""
    return _FixedPoint.apply(layer, x, *theta_values)


class ImplicitLayer:
    """z*(theta, x) for one problem, differentiable at every order by implicit solves."""

    def __init__(self, strategy, problem, direct: bool = True):
        self.problem = problem
        self.names = tuple(problem.theta)
        self.strategy = strategy
        self.direct = direct  # False: every backward solve iterates (_Solves)

    def f(self, theta_values, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.problem.f(self.theta_dict(theta_values), x, z)

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.problem.m, dtype=x.dtype, device=x.device)

    def solve_forward(self, g, z0: torch.Tensor) -> torch.Tensor:
        return self.checked(self.strategy.forward_solution(g, z0))

    def solve_backward(self, g, z0: torch.Tensor) -> torch.Tensor:
        return self.checked(self.strategy.backward_solution(g, z0))

    def direct_tol(self, z: torch.Tensor) -> float | None:
        """The tolerance of direct backward solves: those replace plain iteration only."""
        if not self.direct or self.strategy.b_solver != "fixed_point":
            return None
        return self.strategy.tolerances(z.dtype)["b_tol"]

    def checked(self, solution: Solution) -> torch.Tensor:
        warn_if_not_converged(solution, f"{self.problem.name} layer")
        return solution.z

    def theta_dict(self, values) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, values, strict=True))

    def __call__(self, theta: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return fixed_point(self, x, [theta[name] for name in self.names])


def warn_if_not_converged(solution: Solution, what: str) -> None:
    """NotConvergedWarning naming ``what`` and the solve, if it stopped short of its tol."""
    if not solution.stats.converged:
        # Issued from inside autograd Functions: the caller's frame is too far up to
        # point at reliably, so the message says what failed instead.
        warnings.warn(f"{what}: {solution.stats.describe()}", NotConvergedWarning, stacklevel=3)
