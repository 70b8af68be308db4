"""What the two torchdeq peers share: z* from torchdeq's ``DEQ`` module, as its docs show.

torchdeq (https://torchdeq.readthedocs.io/en/latest/get_started.html) wraps a layer in a
module made by ``torchdeq.get_deq(...)``; in training mode ``z_out, info = deq(f, z0)``
returns a list whose last entry is z* with torchdeq's backward attached, and a user
differentiates *that tensor* with autograd. So do we: :meth:`TorchdeqStrategy.z_star` is
that entry, and every query is deqbench's autograd composition
(:class:`~deqbench.strategies._autograd.AutogradStrategy`) on top of it.

A full tangent dz*/dt (m numbers a sample) is taken the way a PINN user must take it
through a backward that is not itself differentiable in its incoming gradient: one reverse
pass per state component (``torch.autograd.grad(z[:, j].sum(), t, create_graph=True)``),
as `implicit-vjp` does. (The double-backward trick would need torchdeq's backward to be
differentiable in its cotangent; its IFT backward detaches the adjoint solve.)

Settings passed through (the same as ours): the solvers (``anderson``, and plain
iteration as torchdeq's ``fixed_point_iter``), ``f_tol``/``b_tol``, ``f_max_iter``/
``b_max_iter``, and the relative stopping mode (``stop_mode='rel'``). What differs is in
:meth:`TorchdeqStrategy.differences` and in every row.
"""

from __future__ import annotations

import torch

from deqbench.solvers import SolverStats
from deqbench.strategies._autograd import AutogradStrategy
from deqbench.strategies._peers import Peer
from deqbench.strategies.implicit_vjp import ImplicitVJP

#: deqbench's solver names -> torchdeq's.
SOLVERS = {"anderson": "anderson", "fixed_point": "fixed_point_iter"}


class TorchdeqStrategy(Peer, AutogradStrategy):
    """Abstract: a subclass says which backward torchdeq attaches (:meth:`deq_options`)."""

    peer = "torchdeq 0.1.0"
    requirements = (("torchdeq", "0.1.0"),)
    # torchdeq's own defaults are plain iteration both ways; deqbench's are Anderson forward and
    # backward, which torchdeq also has: ours are passed, so that only the backward differs.

    def deq_options(self) -> dict:
        """torchdeq's options that choose the backward (``ift``, ``grad``)."""
        raise NotImplementedError

    def z_star(self, problem, theta, x):
        from torchdeq import get_deq

        tolerances = self.tolerances(problem.dtype)
        deq = get_deq(
            f_solver=SOLVERS[self.f_solver],
            b_solver=SOLVERS[self.b_solver],
            f_tol=tolerances["f_tol"],
            b_tol=tolerances["b_tol"],
            f_max_iter=self.f_max_iter,
            b_max_iter=self.b_max_iter,
            f_stop_mode="rel",
            b_stop_mode="rel",
            **self.deq_options(),
        )
        b_tol = tolerances["b_tol"]
        writer = lambda info: self.solves.append(stats("backward", self.b_solver, info, b_tol))  # noqa: E731
        z_out, info = deq(lambda z: problem.f(theta, x, z), problem.z_init(), backward_writer=writer)
        self.solves.append(stats("forward", self.f_solver, info, tolerances["f_tol"]))
        return z_out[-1]

    # One reverse pass per state component: see the module doc.
    input_derivative = ImplicitVJP.input_derivative

    def differences(self) -> str:
        return (
            "torchdeq stops on the worst sample's |f(z) - z| / (|f(z)| + 1e-9) (stop_mode='rel'; ours "
            "has no 1e-9) and returns the iterate of lowest residual; its Anderson keeps 6 iterates "
            "with regularization 1e-4 (ours: deqbench.solvers.anderson)"
        )


def stats(phase: str, solver: str, info, tol: float) -> SolverStats:
    """deqbench's statistics of one torchdeq solve, from the ``info`` dict it returns."""
    residual = float(torch.as_tensor(info["rel_lowest"]).max())
    steps = int(torch.as_tensor(info["nstep"]).max())
    return SolverStats(phase, solver, steps, steps, residual, residual <= tol, tol)
