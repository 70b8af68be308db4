"""`jax-unrolled`: JAX autodiff through the forward solver's steps (the JAX `unrolled`).

z*(theta, x) is the K-th iterate of the forward solver from ``problem.z_init()``: K
evaluations of f taken by :func:`deqbench.jax_solvers.iterate` (the very steps of
:func:`~deqbench.jax_solvers.solve`, plain iteration or Anderson) in a ``lax.scan``, which
JAX records and differentiates like any other function. Every query is then a plain
transform of it (:mod:`deqbench.strategies._jax_autodiff`): nested ``jax.jvp``,
``jax.grad``, ``jax.jacfwd``. It is exact to the solver's tolerance at every order: the
iteration map is a contraction near z*, so the derivatives of its K-th iterate converge to
those of the fixed point at the same linear rate (times a polynomial in K per order), and K
is the count that brought the iterate itself to tolerance. Memory grows with K: reverse
mode keeps every step.

**Why K is static, and how it is found.** Reverse mode cannot go through a ``while_loop``,
so the number of recorded steps must be a Python int when the query is traced. K is the
iteration count of a converged forward solve at the problem's own (theta, x), run once per
problem instance while the query is traced (``jax.ensure_compile_time_eval``), so under
``jax.jit`` it counts towards the query's compile time, never its run time. The traced
function takes exactly K steps and reports them as its forward solve: their iterations,
the residual of the last step and whether it meets ``f_tol``, so the compiled query stays
honest if it is ever called on other inputs (a residual above tolerance is flagged, never
silent), and a solve stopped by ``f_max_iter`` reports not converged.

The alternative, ``f_max_iter`` steps in a masked ``lax.scan`` (each step a ``lax.cond``
that skips f once converged), needs no K in advance but records ``f_max_iter`` steps.
Measured on tanh quick (f_tol 1e-13, K = 34, f_max_iter = 500, pinn_grad, CPU): both
compile in about 2 s, but the masked scan runs 5x slower (10 ms against 2 ms) and its
compiled temporaries are 20x larger (1.3 MB against 64 kB): they grow with ``f_max_iter``,
not with K.

**Solver.** Plain iteration by default, as in the torch `unrolled` (what a reader means by
"unrolling the solver"), and by measurement: differentiating through Anderson's mixing (a
Cholesky solve a step, and its derivative) costs far more than the plain steps it saves.
tanh default (m=32), tol 1e-10: 24 plain steps against 20 Anderson ones, and the grad query
compiles in 1.5 s of CPU time against 9 s, and runs in 3 ms against 14 ms. ``f_solver="anderson"`` is
exact too (the tests check it).
"""

from __future__ import annotations

from typing import Any

from deqbench import backends
from deqbench.strategies._jax_autodiff import FixedPoint, JaxAutodiffStrategy
from deqbench.tolerances import solver_tol


class JaxUnrolled(JaxAutodiffStrategy):
    name = "jax-unrolled"
    description = "JAX autodiff through the K forward solver steps (lax.scan); memory grows with K"
    default_f_solver = "fixed_point"

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        # id(problem) -> (problem, K): the problem is kept so its id cannot be reused.
        self._iterations: dict[int, tuple[Any, int]] = {}

    def fixed_point(self, problem) -> FixedPoint:
        from deqbench import jax_solvers

        f, z0 = problem.f, problem.z_init()
        steps, tol = self.iterations(problem), self.forward_tol(problem)

        def z_star(theta, x):
            z, info = jax_solvers.iterate(self.f_solver, lambda z: f(theta, x, z), z0, steps, tol=tol)
            self.report("forward", self.f_solver, tol, info)
            return z

        return z_star

    def forward_tol(self, problem) -> float:
        return solver_tol(str(problem.dtype)) if self.f_tol is None else self.f_tol

    def iterations(self, problem) -> int:
        """K: the steps a forward solve at the problem's own (theta, x) takes (at most
        ``f_max_iter``), solved once per instance, eagerly even while a query is traced."""
        entry = self._iterations.get(id(problem))
        if entry is None:
            entry = (problem, self._count_iterations(problem))
            self._iterations[id(problem)] = entry
        return entry[1]

    def _count_iterations(self, problem) -> int:
        from deqbench import jax_solvers

        jax = backends.import_jax()
        theta, x, f = problem.theta, problem.x, problem.f
        with jax.ensure_compile_time_eval():
            _, info = jax.jit(
                lambda theta, x, z0: jax_solvers.solve(
                    self.f_solver,
                    lambda z: f(theta, x, z),
                    z0,
                    tol=self.forward_tol(problem),
                    max_iter=self.f_max_iter,
                )
            )(theta, x, problem.z_init())
            return int(info.iterations)
