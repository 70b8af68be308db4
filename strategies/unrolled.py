"""`unrolled`: every forward solver step is recorded by autograd and differentiated through.

Exact to the solver's tolerance at every order (the derivative of the K-th iterate tends to
the derivative of the fixed point), with memory that grows with the number of iterations.
"""

from deqbench.queries import QUERIES
from deqbench.strategies._autograd import AutogradStrategy


class Unrolled(AutogradStrategy):
    name = "unrolled"
    description = "autograd through every forward solver step; memory grows with iterations"
    exact_queries = frozenset(QUERIES)
    # Plain iteration by default: what a reader means by "unrolling the solver".
    default_f_solver = "fixed_point"

    def z_star(self, problem, theta, x):
        return self.solve_forward(lambda z: problem.f(theta, x, z), problem.z_init())
