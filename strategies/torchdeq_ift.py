"""`torchdeq-ift`: torchdeq 0.1.0 with implicit differentiation, ``get_deq(ift=True)``.

How (https://torchdeq.readthedocs.io/en/latest/api/core.html, ``ift=True``: "enable
Implicit Differentiation"): ``deq = get_deq(ift=True, ...)``; ``z_out, info = deq(f, z0)``;
z* is ``z_out[-1]``, differentiated by autograd (see :mod:`._torchdeq`). Its backward is a
custom ``autograd.Function`` that solves the adjoint fixed point ``g = g J + u`` with the
backward solver on a *detached* z*, calling autograd without ``create_graph``.

What torchdeq promises: implicit differentiation of z*, i.e. first-order gradients, exact to
the backward solve (``exact_queries``). Above first order autograd differentiates only what
the backward recorded, so the solve's own dependence on theta and x is dropped: d2z*/dt2 and
the gradient of a physics loss are measured and reported, and known to be wrong, silently
(measured: 3.6e-2 and 0.98 on tanh; docs/explanations/strategies.md).
"""

from deqbench.strategies._torchdeq import TorchdeqStrategy


class TorchdeqIFT(TorchdeqStrategy):
    name = "torchdeq-ift"
    description = "torchdeq 0.1.0 get_deq(ift=True): implicit backward on a detached z*"
    exact_queries = frozenset({"forward", "jvp", "grad"})

    def deq_options(self) -> dict:
        return {"ift": True}
