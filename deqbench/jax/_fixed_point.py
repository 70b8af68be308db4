"""``fixed_point(f, params, x, z_init)``: z* = f(params, x, z*) as a ``jax.custom_jvp`` function.

The forward is a solve JAX never differentiates (a ``lax.while_loop``,
:mod:`deqbench.jax_solvers`). The tangent rule is the implicit function theorem: a tangent
``(dparams, dx)`` maps to the solution of ``(I - J) dz = f_params[dparams] + f_x[dx]``
(``J = df/dz`` at z*), solved matrix-free by a ``lax.custom_linear_solve`` whose matvec is
``v -> v - J v``. That is the `jax-implicit` strategy's rule (its module docstring says why
it is exact at every order): the partials are taken at z* obtained by calling the
custom_jvp function *itself* inside the rule, so an outer transform differentiates z* again
through its own rule, and ``custom_linear_solve`` is transposable (reverse mode) and
differentiable (every order). ``jax.grad``, ``jax.jvp``, ``jax.jacfwd``, ``jax.jacrev``,
``jax.hessian`` compose to any order, under ``jax.jit`` and ``jax.vmap``. Nothing is
differentiated through solver iterations: memory does not grow with them.

``params`` is any pytree (a dict of arrays, an equinox module, flax variables); its leaves
that are not arrays (an equinox module's activation function, say) are held static.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from deqbench import jax_solvers
from deqbench.queries import NotConvergedWarning
from deqbench.solvers import SolverStats
from deqbench.tolerances import solver_tol

StatsCallback = Callable[[SolverStats], None]


def fixed_point(
    f: Callable[[Any, Any, Any], Any],
    params: Any,
    x: Any,
    z_init: Any,
    *,
    solver: str = "anderson",
    tol: float | None = None,
    max_iter: int = 500,
    backward_solver: str = "fixed_point",
    backward_tol: float | None = None,
    backward_max_iter: int = 500,
    callback: StatsCallback | None = None,
):
    """z* with z* = f(params, x, z*), found from ``z_init``; differentiable in params and x.

    Args:
        f: the layer, ``f(params, x, z) -> z`` (z: an array of z_init's shape and dtype).
        params, x: what z* is differentiated in (pytrees; non-array leaves held static).
        z_init: the starting state, an array (z* does not depend on it: no derivative).
        solver, tol, max_iter: the forward solve (``"anderson"`` or ``"fixed_point"``; tol
            None: 1e-10 in float64, 1e-5 in float32, on the worst sample's relative residual
            along z's leading dimension).
        backward_solver, backward_tol, backward_max_iter: every linear solve of the
            derivative rules (tangents and, transposed, adjoints).
        callback: called on the host with each solve's :class:`deqbench.solvers.SolverStats`
            when the solve runs (under jit, vmap and any nesting of transforms); None warns
            :class:`deqbench.NotConvergedWarning` for each solve short of its tolerance.
    """
    if not isinstance(z_init, jax.Array | np.ndarray):
        raise TypeError(f"z_init must be an array (the starting state), got {type(z_init).__name__}")
    for name in (solver, backward_solver):
        jax_solvers.method(name)  # ValueError naming the known solvers
    arrays, rebuild = _partition(params)
    report = functools.partial(_report, callback or _warn_if_not_converged)
    forward = _Solve("forward", solver, tol, max_iter, report)
    backward = _Solve("backward", backward_solver, backward_tol, backward_max_iter, report)

    def f_of(arrays_, x_, z_):
        return f(rebuild(arrays_), x_, z_)

    @jax.custom_jvp
    def z_star(arrays_, x_, z0):
        return forward(lambda z: f_of(arrays_, x_, z), z0)

    @z_star.defjvp
    def implicit_tangent(primals, tangents):
        arrays_, x_, z0 = primals
        # z* as a function of (params, x) again, not a constant: what makes every order exact.
        z = z_star(arrays_, x_, z0)
        _, rhs = jax.jvp(lambda a, xx: f_of(a, xx, z), (arrays_, x_), tangents[:2])
        jacobian_vp = lambda v: jax.jvp(lambda zz: f_of(arrays_, x_, zz), (z,), (v,))[1]  # noqa: E731
        operator = lambda v: v - jacobian_vp(v)  # noqa: E731 - I - J, linear in v
        linear_solve = lambda op, b: backward(lambda v: b + (v - op(v)), b)  # noqa: E731 - v = A v + b
        return z, jax.lax.custom_linear_solve(operator, rhs, linear_solve, transpose_solve=linear_solve)

    return z_star(arrays, x, jax.lax.stop_gradient(z_init))


class _Solve:
    """One phase's solver settings; a call solves z = g(z) from z0 and reports the stats."""

    def __init__(self, phase: str, solver: str, tol: float | None, max_iter: int, report):
        self.phase, self.solver, self.tol, self.max_iter, self.report = phase, solver, tol, max_iter, report

    def __call__(self, g, z0):
        tol = solver_tol(str(z0.dtype)) if self.tol is None else float(self.tol)
        z, info = jax_solvers.solve(self.solver, g, z0, tol=tol, max_iter=self.max_iter)
        stats = jax.lax.stop_gradient((info.iterations, info.nfev, info.residual, info.converged))
        jax.debug.callback(functools.partial(self.report, self.phase, self.solver, tol), *stats)
        return z


def _report(callback: StatsCallback, phase, solver, tol, iterations, nfev, residual, converged) -> None:
    # Under vmap the callback receives a batch of statistics: the worst of them stands.
    residual = np.asarray(residual, dtype=float)
    worst = float(residual.max()) if residual.size else 0.0
    ok = bool(np.all(converged)) and not np.isnan(worst)
    callback(SolverStats(phase, solver, int(np.max(iterations)), int(np.max(nfev)), worst, ok, tol))


def _warn_if_not_converged(stats: SolverStats) -> None:
    if not stats.converged:
        warnings.warn(f"deqbench.jax.fixed_point: {stats.describe()}", NotConvergedWarning, stacklevel=2)


def _partition(params):
    """params' array leaves (differentiable) and a function that puts them back with the
    other leaves (held static, closed over: JAX cannot trace a Python function)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    is_array = [isinstance(leaf, jax.Array | np.ndarray) for leaf in leaves]
    arrays = [leaf for leaf, array in zip(leaves, is_array, strict=True) if array]
    static = [None if array else leaf for leaf, array in zip(leaves, is_array, strict=True)]

    def rebuild(arrays_):
        it = iter(arrays_)
        merged = [next(it) if array else leaf for leaf, array in zip(static, is_array, strict=True)]
        return jax.tree_util.tree_unflatten(treedef, merged)

    return arrays, rebuild
