"""`mondeq`: a monotone operator equilibrium network (Winston and Kolter 2020).

The equilibrium is ``z = tanh(W z + U x + b)`` with the monotone parametrisation

    W = (1 - mono) I - A^T A + B - B^T,

so that ``I - W = mono I + A^T A - (B - B^T)`` has symmetric part ``mono I + A^T A >= mono I``:
``I - W`` is strongly monotone with margin ``mono``, and the equilibrium is unique for any
monotone 1-Lipschitz sigma that is a proximal operator (tanh is one: it is monotone and
1-Lipschitz, hence the prox of a convex function). W itself need not be a contraction.

deqbench's solvers iterate the layer itself, so ``f`` is the paper's forward-backward
splitting step, whose fixed points are exactly the equilibria above:

    f(theta, x, z) = tanh((1 - alpha) z + alpha (W z + U x + b)).

**Why it is a contraction.** With ``L = ||I - W||_2`` and monotonicity margin ``mono``,
``||(I - alpha (I - W)) v||^2 <= (1 - 2 alpha mono + alpha^2 L^2) ||v||^2`` and tanh is
1-Lipschitz, so f is a contraction in z for ``0 < alpha < 2 mono / L^2``. We take the middle
of that range, ``alpha = mono / L^2``, which minimises the bound: the Lipschitz constant of f
is at most ``sqrt(1 - mono^2 / L^2)``. alpha is fixed at build time from the drawn numbers
(a Python float, not a parameter: perturbing theta keeps the same step).

**Scaling.** A and B are Gaussian, scaled to ``||A||_2^2 = 1/2`` and ``||B||_2 = 1/4``, so
``L <= mono + 1/2 + 1/2``: at ``mono = 0.5`` f contracts at worst like ``sqrt(1 - 1/9)`` ~ 0.94
whatever m is (larger A and B would only slow every solver down). The spectral norms (of
A, B and I - W) are estimated by power iteration, not an SVD (an SVD of a 4096 x 4096 matrix
takes minutes on a CPU); the estimate approaches L from below, and taking alpha at half the
admissible bound leaves a factor sqrt(2) of margin for it.

W is applied matrix-free inside f, ``z W^T = (1 - mono) z - (z A^T) A + z B^T - z B``, so
gradients flow to A and B and a call costs O(batch m^2) rather than the O(m^3) of forming
``A^T A`` (which at m = 4096 would dominate every solver iteration).

Toy physics losses exercise the derivative queries, as on `tanh`: ``dz/dt + z = 0``
(pinn_grad) and ``d2z/dx2 + z = 0`` (pinn2_grad). They model nothing physical.
"""

import torch

from deqbench.problems.tanh import ToyDEQ

#: ||A||_2^2 and ||B||_2 after scaling: they bound L = ||I - W||_2 by mono + 1.
A_NORM_SQUARED = 0.5
B_NORM = 0.25
#: Power-iteration steps for a spectral norm estimate (a few % from below at worst on the
#: Gaussian matrices drawn here; the alpha chosen tolerates a factor sqrt 2).
POWER_STEPS = 200


def spectral_norm_estimate(apply, apply_t, start: torch.Tensor, steps: int = POWER_STEPS) -> float:
    """||M||_2 by power iteration on M^T M, with M given by ``apply`` and M^T by ``apply_t``."""
    v = start / start.norm()
    for _ in range(steps):
        w = apply_t(apply(v))
        v = w / w.norm()
    return float(apply(v).norm())


class MonDEQ(ToyDEQ):
    name = "mondeq"
    description = "monotone operator DEQ z = tanh(W z + U x + b), W = (1-m)I - A'A + B - B' (FB splitting)"
    backends = ("torch", "jax")
    presets = {
        "quick": {"m": 8, "n": 3, "batch": 4, "mono": 0.5},
        "default": {"m": 64, "n": 4, "batch": 16, "mono": 0.5},
        "large": {"m": 1024, "n": 4, "batch": 128, "mono": 0.5},
        "xlarge": {"m": 4096, "n": 4, "batch": 64, "mono": 0.5},
    }

    def build(self, generator, *, m, n, batch, mono):
        self.mono = mono
        # A, B and L in float64 on the CPU, whatever the dtype and device: alpha is the same
        A = self.scaled_gaussian(generator, m, A_NORM_SQUARED**0.5)
        B = self.scaled_gaussian(generator, m, B_NORM)
        self.lipschitz = self.monotone_operator_norm({"A": A, "B": B}, generator)  # ||I - W||_2
        self.alpha = mono / self.lipschitz**2
        self.theta = {
            "A": self.tensor(A),
            "B": self.tensor(B),
            "U": self.randn(generator, m, n) / n**0.5,
            "b": 0.5 * self.randn(generator, m),
        }
        self.draw_inputs(generator, m=m, n=n, batch=batch)

    @staticmethod
    def scaled_gaussian(generator, m, norm) -> torch.Tensor:
        """A Gaussian m x m matrix (float64, CPU) scaled to spectral norm ``norm`` (estimated)."""
        matrix = torch.randn(m, m, generator=generator, dtype=torch.float64)
        start = torch.randn(m, generator=generator, dtype=torch.float64)
        estimate = spectral_norm_estimate(lambda v: matrix @ v, lambda v: matrix.T @ v, start)
        return matrix * (norm / estimate)

    def monotone_operator_norm(self, theta, generator) -> float:
        """L = ||I - W||_2 by power iteration, with W applied matrix-free."""
        start = torch.randn(self.size["m"], generator=generator, dtype=torch.float64)
        # on rows v: v (I - W)^T = v - v W^T, and v (I - W) = v - v W
        return spectral_norm_estimate(
            lambda v: v - self.weight_t(theta, v),
            lambda v: v - self.weight(theta, v),
            start,
        )

    def weight_t(self, theta, z):
        """z W^T for rows z, matrix-free: (1 - mono) z - (z A^T) A + z B^T - z B."""
        A, B = theta["A"], theta["B"]
        return (1 - self.mono) * z - (z @ A.T) @ A + z @ B.T - z @ B

    def weight(self, theta, z):
        """z W for rows z (W's transpose applied), for the power iteration on I - W."""
        A, B = theta["A"], theta["B"]
        return (1 - self.mono) * z - (z @ A.T) @ A - z @ B.T + z @ B

    def f(self, theta, x, z):
        pre = self.weight_t(theta, z) + x @ theta["U"].T + theta["b"]
        return self.xp.tanh((1 - self.alpha) * z + self.alpha * pre)
