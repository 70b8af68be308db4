"""`digits`: a DEQ classifier on scikit-learn's bundled 8 x 8 handwritten digits.

    z = tanh(W z + U x + b),   logits = V z + c,   loss = mean cross-entropy(logits, labels)

Data: ``sklearn.datasets.load_digits()`` (1797 images shipped with scikit-learn, no
download), pixels scaled from 0..16 to [0, 1], so x is (batch, 64) and the labels are 0..9.
An instance takes the first ``batch`` images of a permutation drawn from the problem's
seeded generator, so it is deterministic.

W is scaled to spectral norm ``rho`` < 1; tanh is 1-Lipschitz, so the layer is a
contraction in z and z* attracts (what the oracle needs). The parameters are random, not
trained: the point is the ``grad`` query of a real classification loss on real data.

Direction ``"t"`` is the normalised mean image: ``jvp`` and ``jvp2`` differentiate along
"brightening the image" (every pixel in proportion to its average ink). There are no
physics losses, so the pinn queries are unsupported; n = 64 exceeds ``hessian_max_n``, so
the dense ``hessian`` query is too.
"""

import torch

from deqbench.problems.base import Problem
from deqbench.problems.tanh import spectral_scaled

N_CLASSES = 10
PIXEL_MAX = 16.0  # load_digits' pixels are ink counts 0..16


def load_digits_data() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 images, (1797, 64) float64 in [0, 1], and their labels, (1797,) int64."""
    from sklearn.datasets import load_digits  # imported here: only this problem needs it

    digits = load_digits()
    return torch.from_numpy(digits.data) / PIXEL_MAX, torch.from_numpy(digits.target).long()


class Digits(Problem):
    name = "digits"
    description = "DEQ classifier on sklearn's 8x8 digits: z = tanh(W z + U x + b), cross-entropy head"
    backends = ("torch", "jax")
    presets = {
        "quick": {"m": 8, "batch": 8, "rho": 0.8},
        "default": {"m": 64, "batch": 128, "rho": 0.8},
        "large": {"m": 512, "batch": 512, "rho": 0.8},
        "full": {"m": 256, "batch": 1797, "rho": 0.8},
    }

    def build(self, generator, *, m, batch, rho):
        images, labels = load_digits_data()
        if not 1 <= batch <= len(images):
            raise ValueError(f"digits: batch must be in 1..{len(images)}, got {batch}")
        self.indices = torch.randperm(len(images), generator=generator)[:batch]
        self.x = self.tensor(images[self.indices])
        self.labels = labels[self.indices]
        # a float one-hot matrix picks each sample's label entry by a product, the same in
        # torch and JAX (integer gathers are spelled differently in the two)
        self.one_hot = self.tensor(torch.nn.functional.one_hot(self.labels, N_CLASSES))
        n = self.x.shape[1]
        self.theta = {
            "W": spectral_scaled(self.randn(generator, m, m), rho),
            "U": self.randn(generator, m, n) / n**0.5,
            "b": 0.5 * self.randn(generator, m),
            "V": self.randn(generator, N_CLASSES, m) / m**0.5,
            "c": torch.zeros(N_CLASSES, dtype=self.dtype, device=self.device),
        }
        mean_image = self.x.mean(dim=0)
        self.directions = {"t": mean_image / torch.linalg.vector_norm(mean_image)}

    def f(self, theta, x, z):
        return self.xp.tanh(z @ theta["W"].T + x @ theta["U"].T + theta["b"])

    def output(self, theta, z):
        return z @ theta["V"].T + theta["c"]

    def log_softmax(self, logits):
        """Row-wise log-softmax; the max shift keeps exp from overflowing (its gradient cancels)."""
        xp = self.xp
        shifted = logits - xp.amax(logits, axis=1, keepdims=True)
        return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))

    def data_loss(self, theta, x, z):
        log_p = self.log_softmax(self.output(theta, z))
        return -self.xp.mean(self.xp.sum(self.one_hot * log_p, axis=1))
