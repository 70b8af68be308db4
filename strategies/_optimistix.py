"""What the optimistix peers share: ``optimistix.fixed_point`` with ``FixedPointIteration``.

How (https://docs.kidger.site/optimistix/api/fixed_point/): ``optx.fixed_point(fn, solver,
y0, args, max_steps=..., adjoint=...)`` with ``fn(y, args)`` one sample's layer and
``solver = optx.FixedPointIteration(rtol, atol)``; ``sol.value`` is z*, vmapped over the
batch (:mod:`._jax_peers`), and every query is a JAX transform of it
(:mod:`._jax_autodiff`). The subclasses differ only in the ``adjoint`` (how optimistix
differentiates the solve, https://docs.kidger.site/optimistix/api/adjoints/).

``throw=False``: a solve that stops at ``max_steps`` returns its last iterate and is flagged
not converged (optimistix's default raises instead), as deqbench's own solves are.

Differences: optimistix has no Anderson acceleration, so the forward is plain iteration;
and its stopping rule is componentwise, ``max_i |z_i' - z_i| / (atol + rtol |z_i'|) < 1``:
with ``rtol = atol = f_tol`` it asks every component to move less than ``f_tol (1 + |z_i|)``,
where ours asks the sample's residual norm to be below ``f_tol |f(z)|``.
"""

from __future__ import annotations

from deqbench.strategies._jax_peers import JaxPeer


class OptimistixStrategy(JaxPeer):
    """Abstract: a subclass says which adjoint optimistix differentiates the solve with."""

    peer = "optimistix 0.1.0"
    requirements = (("optimistix", "0.1.0"), ("lineax", "0.1.1"))
    default_f_solver = "fixed_point"  # optimistix's fixed-point solver; it has no Anderson
    default_b_solver = "fixed_point"  # unused unless the adjoint says so: see differences()

    def adjoint(self, tol: float):
        """The optimistix adjoint (``tol``: the backward tolerance of the problem's dtype)."""
        raise NotImplementedError

    def unsupported_reason(self, query, problem):
        if self.f_solver != "fixed_point":
            return (
                f"optimistix 0.1.0 has no {self.f_solver!r} fixed-point solver; f_solver='fixed_point' only"
            )
        return super().unsupported_reason(query, problem)

    def solve_sample(self, layer, theta, x, z0):
        import optimistix as optx

        f_tol = self.tolerances(str(z0.dtype))["f_tol"]
        solution = optx.fixed_point(
            lambda z, args: layer(*args, z),
            optx.FixedPointIteration(rtol=f_tol, atol=f_tol),
            z0,
            args=(theta, x),
            max_steps=self.f_max_iter,
            adjoint=self.adjoint(self.tolerances(str(z0.dtype))["b_tol"]),
            throw=False,
        )
        converged = solution.result == optx.RESULTS.successful
        return solution.value, solution.stats["num_steps"], converged

    def differences(self) -> str:
        return (
            "forward: optimistix FixedPointIteration (no Anderson), stopping when every component "
            "moves less than f_tol (1 + |z_i|) (rtol = atol = f_tol, max norm), not on the relative "
            "residual norm; " + self.backward_differences()
        )

    def backward_differences(self) -> str:
        raise NotImplementedError
