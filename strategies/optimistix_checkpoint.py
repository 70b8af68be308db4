"""`optimistix-checkpoint`: optimistix 0.1.0 ``RecursiveCheckpointAdjoint``.

How: ``optx.fixed_point(..., adjoint=optx.RecursiveCheckpointAdjoint())`` (see
:mod:`._optimistix` and https://docs.kidger.site/optimistix/api/adjoints/): reverse mode
through the solver's own iterations, with checkpoints (``log(max_steps)`` of them by
default) instead of storing every step.

What optimistix promises: reverse-mode differentiation through the loop, exact to the
forward tolerance: ``grad`` (and forward-over-reverse, ``jax.jacfwd(jax.grad(...))``, which
no query here composes). Every query that starts with forward mode along an input
direction raises inside JAX, with the message recorded as the cell's reason; the physics
queries are tried as a user of a reverse-only library writes them (partials by
``jax.jacrev``, ``input_mode = "reverse"``), and reverse over reverse through the solver's
``while_loop`` raises too: recorded with that message. The peer tests run those
compositions and check the messages are still JAX's.
"""

from deqbench.strategies._optimistix import OptimistixStrategy
from deqbench.strategies._peers import REVERSE_OF_A_WHILE_LOOP, reverse_only_refusals


class OptimistixCheckpoint(OptimistixStrategy):
    name = "optimistix-checkpoint"
    description = "optimistix 0.1.0 RecursiveCheckpointAdjoint: reverse mode through the loop"
    supported_queries = frozenset({"forward", "grad"})
    exact_queries = frozenset({"forward", "grad"})
    refusals = reverse_only_refusals("optimistix 0.1.0 RecursiveCheckpointAdjoint", REVERSE_OF_A_WHILE_LOOP)
    input_mode = "reverse"

    def adjoint(self, tol):
        import optimistix as optx

        return optx.RecursiveCheckpointAdjoint()

    def backward_differences(self) -> str:
        return "backward: reverse mode through the forward iterations (b_solver, b_tol unused)"
