"""`torchdeq-phantom`: torchdeq 0.1.0 at its default backward, the phantom gradient.

How (https://torchdeq.readthedocs.io/en/latest/api/core.html, ``grad``: "Specifies the
steps of PhantomGrad", default 1, damping ``tau`` 1.0): ``deq = get_deq(...)`` without
``ift``; ``z_out, info = deq(f, z0)``; z* is ``z_out[-1]``, differentiated by autograd (see
:mod:`._torchdeq`). The forward solve runs without a graph and one step ``f(z*)`` is
recorded: autograd then sees ``dz*/dp = f_p`` and drops ``(I - J)^{-1}``.

What torchdeq promises: z* itself (``exact_queries`` = forward). The phantom gradient is, by
its docs and paper (Geng et al. 2021, "On Training Implicit Models"), an approximation
meant to train with, not the gradient: every derivative is measured and reported, none is
claimed (measured: 26% off on a first-order gradient; docs/explanations/strategies.md).
"""

from deqbench.strategies._torchdeq import TorchdeqStrategy


class TorchdeqPhantom(TorchdeqStrategy):
    name = "torchdeq-phantom"
    description = "torchdeq 0.1.0 default backward: 1-step phantom gradient (an approximation)"
    exact_queries = frozenset({"forward"})

    def deq_options(self) -> dict:
        return {"grad": 1}
