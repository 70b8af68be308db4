"""`optimistix-implicit-gmres`: optimistix 0.1.0 ``ImplicitAdjoint`` with lineax's GMRES.

How: ``optx.ImplicitAdjoint(linear_solver=lx.GMRES(rtol, atol, max_steps))`` (see
:mod:`._optimistix` and https://docs.kidger.site/lineax/api/solvers/): the matrix-free
choice, each matrix-vector product a jvp (or, transposed, a vjp) of the layer, so no
Jacobian is ever formed. ``rtol = atol = b_tol`` and ``max_steps = b_max_iter``, our
backward settings.

What optimistix promises: as `optimistix-implicit`, every query, now to GMRES's tolerance.
"""

from deqbench.strategies._optimistix import OptimistixStrategy


class OptimistixImplicitGMRES(OptimistixStrategy):
    name = "optimistix-implicit-gmres"
    description = "optimistix 0.1.0 ImplicitAdjoint with lineax GMRES (matrix-free)"

    def adjoint(self, tol):
        import lineax as lx
        import optimistix as optx

        return optx.ImplicitAdjoint(linear_solver=lx.GMRES(rtol=tol, atol=tol, max_steps=self.b_max_iter))

    def backward_differences(self) -> str:
        return (
            "linear solves: lineax GMRES (restart 20) with rtol = atol = b_tol, max_steps = b_max_iter, "
            "not deqbench's fixed-point iteration; no statistics reported"
        )
