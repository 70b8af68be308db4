"""`optimistix-implicit`: optimistix 0.1.0 ``ImplicitAdjoint`` with its default linear solver.

How: ``optx.fixed_point(..., adjoint=optx.ImplicitAdjoint())`` (see :mod:`._optimistix`),
the adjoint optimistix uses by default and documents as "the preferred technique for
backpropagating through a nonlinear solve". Its linear solver defaults to lineax's
``AutoLinearSolver(well_posed=None)``, which for a square system materialises the Jacobian
and solves it by LU: exact, and dense (each sample's m x m Jacobian here; optimistix issue
#93, a 77 TB allocation on one large system).

What optimistix promises: the implicit function theorem, differentiable in forward and
reverse mode (it is a custom_jvp), so every query; measured right at every order
(docs/explanations/strategies.md), hence ``exact_queries`` = every query.
"""

from deqbench.strategies._optimistix import OptimistixStrategy


class OptimistixImplicit(OptimistixStrategy):
    name = "optimistix-implicit"
    description = "optimistix 0.1.0 ImplicitAdjoint, default (dense LU) linear solver"

    def adjoint(self, tol):
        import optimistix as optx

        return optx.ImplicitAdjoint()

    def backward_differences(self) -> str:
        return "linear solves: lineax's default, dense LU of each sample's Jacobian (b_solver, b_tol unused)"
