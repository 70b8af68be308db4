"""`jaxopt-implicit`: jaxopt 0.8.5's fixed-point solvers with implicit differentiation.

How (https://jaxopt.github.io/stable/fixed_point.html and
https://jaxopt.github.io/stable/implicit_diff.html): ``solver =
jaxopt.AndersonAcceleration(fixed_point_fun, tol=..., maxiter=..., implicit_diff=True)``
(``FixedPointIteration`` for ``f_solver='fixed_point'``), then ``solver.run(z0, theta,
x).params`` is z* of one sample, vmapped over the batch (:mod:`._jax_peers`); every query is
a JAX transform of it (:mod:`._jax_autodiff`). ``implicit_diff=True`` (jaxopt's default)
wraps the solve in ``custom_fixed_point``: a ``custom_vjp`` whose backward solves the
adjoint linear system with ``implicit_diff_solve``, here jaxopt's default
``linear_solve.solve_normal_cg`` given our ``b_tol`` and ``b_max_iter``.

What jaxopt promises: reverse-mode derivatives (``jax.grad``, ``jax.jacrev``), so
``exact_queries`` = forward and grad. Forward mode raises inside JAX (a custom_vjp has no
tangent rule): ``jvp``, ``jvp2`` and ``hessian`` are recorded unsupported with JAX's message
(the peer tests check it is still JAX's). The physics queries are built the way a PINN user
of jaxopt builds them: each partial by nested ``jax.jacrev`` over per-sample input offsets
(``input_mode = "reverse"``, :func:`._jax_autodiff.reverse_partial`), then ``jax.grad`` of
the loss: reverse over reverse through the custom_vjp, measured (right to the adjoint's CG
tolerance), not claimed.

Differences: jaxopt stops on the absolute l2 norm of each sample's step (or, for Anderson,
its residual), ``<= f_tol``, not relative; its Anderson keeps 5 iterates (ridge 1e-5); the
adjoint is solved by CG on the normal equations, not by fixed-point iteration.
"""

from __future__ import annotations

import functools

from deqbench.strategies._jax_peers import JaxPeer
from deqbench.strategies._peers import reverse_only_refusals


class JaxoptImplicit(JaxPeer):
    name = "jaxopt-implicit"
    description = "jaxopt 0.8.5 fixed point, implicit_diff=True (custom_vjp, normal CG adjoint)"
    peer = "jaxopt 0.8.5"
    requirements = (("jaxopt", "0.8.5"),)
    supported_queries = frozenset({"forward", "grad", "pinn_grad", "pinn2_grad"})
    exact_queries = frozenset({"forward", "grad"})
    refusals = reverse_only_refusals("jaxopt 0.8.5 implicit_diff")
    input_mode = "reverse"
    default_b_solver = "fixed_point"  # unused: the adjoint is jaxopt's normal CG (differences())

    def solve_sample(self, layer, theta, x, z0):
        import jaxopt

        tolerances = self.tolerances(str(z0.dtype))
        method = jaxopt.AndersonAcceleration if self.f_solver == "anderson" else jaxopt.FixedPointIteration
        linear_solve = functools.partial(
            jaxopt.linear_solve.solve_normal_cg, tol=tolerances["b_tol"], maxiter=self.b_max_iter
        )
        solver = method(
            lambda z, th, xx: layer(th, xx, z),
            tol=tolerances["f_tol"],
            maxiter=self.f_max_iter,
            implicit_diff=True,
            implicit_diff_solve=linear_solve,
        )
        params, state = solver.run(z0, theta, x)
        return params, state.iter_num, state.error <= tolerances["f_tol"]

    def differences(self) -> str:
        return (
            "jaxopt stops on the absolute l2 norm of each sample's step (Anderson: residual) <= f_tol, "
            "not relative; its Anderson keeps 5 iterates (ridge 1e-5); adjoint by jaxopt's normal-"
            "equation CG (tol = b_tol, maxiter = b_max_iter), not fixed-point iteration"
        )
