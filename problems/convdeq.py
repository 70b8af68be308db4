"""`convdeq`: a small single-resolution convolutional DEQ with group norm, on 8 x 8 digits.

    u = conv_z(z) + conv_x(x),   z = tanh(gamma * GN(u) + beta)
    logits = V avgpool(z) + bias,   loss = mean cross-entropy(logits, labels)

The state z is (batch, c * 64): c channels of 8 x 8, flattened channel-major. The input x is
(batch, 64), the pixels of scikit-learn's bundled digits (``load_digits_data`` from the
``digits`` problem, no download), and the labels are 0..9.

**Convolution in ``self.xp`` only.** A 3 x 3 convolution with zero padding 1 is written with
nine constant 64 x 64 shift matrices S_k (one per kernel offset, built once in ``build``;
``S_k[p, q] = 1`` when pixel q is pixel p moved by offset k and inside the image):
``conv(z)[b, o, p] = sum_{k, i, q} K[o, i, k] S_k[p, q] z[b, i, q]``, a single ``einsum``
that spells the same in torch and ``jax.numpy``. The kernel K (c_out, c_in, 9) is the
parameter, so the weights are shared across pixels as in a real convolution (the tests check
it against ``torch.nn.functional.conv2d(padding=1)``).

**Group norm inside the z path, as in MDEQ** (Bai, Koltun, Kolter 2020): the channels are
split into ``groups``; each sample's group is normalised over its channels and pixels
(mean, variance + eps), then a per-channel affine gamma, beta.

**Why it is a contraction.** Group norm alone is scale invariant and would not contract, so
the injection conv_x(x) dominates the normalisation statistics. For one group of d entries
the normaliser's Jacobian has 2-norm at most 1 / sqrt(var(u) + eps) <= 1 / std(u), and tanh
is 1-Lipschitz, so

    ||df/dz|| <= max|gamma| * rho / min_{sample, group} std(u),

with rho the 2-norm of the dense conv_z operator (computed at build time from the shift
matrices and scaled to a set value). On the box |z_i| <= 1, which f maps into itself and which
holds z*, a group's share of conv_z(z) has standard deviation at most rho * sqrt(groups), so
std(u) >= s - rho * sqrt(groups), where s is the least per-sample, per-group standard
deviation of the injection. ``build`` scales the injection to s = 1 and picks

    rho = lipschitz / (max|gamma| + lipschitz * sqrt(groups)),

which bounds ||df/dz|| by ``lipschitz`` < 1 on the whole box: f contracts there and z* is
its attracting fixed point (the oracle's check; Newton converges). MDEQ's own block (ReLU,
residual, several norms) carries no such guarantee, so this keeps its ingredients (conv,
group norm in the z path, per-channel affine) in a form that provably contracts.

The parameters are random, not trained. Direction ``"t"`` is the normalised mean image, as
in ``digits``. There are no physics losses (the pinn queries are unsupported) and n = 64
exceeds ``hessian_max_n`` (no dense ``hessian``).
"""

import torch

from deqbench.problems.base import Problem
from deqbench.problems.digits import N_CLASSES, Digits, load_digits_data

SIDE = 8
PIXELS = SIDE * SIDE
#: The 3 x 3 kernel's offsets (di, dj), row-major: offset k is conv2d's weight[..., k // 3, k % 3].
OFFSETS = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]


def shift_matrices(dtype=torch.float64, device="cpu") -> torch.Tensor:
    """(9, 64, 64): S_k[p, q] = 1 when pixel q = pixel p + offset k lies inside the image."""
    S = torch.zeros(len(OFFSETS), PIXELS, PIXELS, dtype=dtype, device=device)
    for k, (di, dj) in enumerate(OFFSETS):
        for i in range(SIDE):
            for j in range(SIDE):
                a, b = i + di, j + dj
                if 0 <= a < SIDE and 0 <= b < SIDE:
                    S[k, i * SIDE + j, a * SIDE + b] = 1
    return S


def dense_conv(K: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    """The (c_out * 64, c_in * 64) matrix of the convolution with kernel K (c_out, c_in, 9)."""
    c_out, c_in, _ = K.shape
    return torch.einsum("oik,kpq->opiq", K, S).reshape(c_out * PIXELS, c_in * PIXELS)


class ConvDEQ(Problem):
    name = "convdeq"
    description = "conv DEQ on 8x8 digits: z = tanh(GN(conv_z z + conv_x x)), MDEQ-style group norm, CE head"
    backends = ("torch", "jax")
    presets = {
        "quick": {"c": 2, "groups": 1, "batch": 4, "lipschitz": 0.8},
        "default": {"c": 4, "groups": 2, "batch": 64, "lipschitz": 0.8},
        "large": {"c": 16, "groups": 4, "batch": 256, "lipschitz": 0.8},
    }
    eps = 1e-5

    @property
    def m(self) -> int:
        return self.size["c"] * PIXELS

    def build(self, generator, *, c, groups, batch, lipschitz):
        if c < 1 or groups < 1 or c % groups:
            raise ValueError(f"convdeq: groups must divide c, got c={c}, groups={groups}")
        if not 0 < lipschitz < 1:
            raise ValueError(f"convdeq: lipschitz must be in (0, 1), got {lipschitz}")
        images, labels = load_digits_data()
        if not 1 <= batch <= len(images):
            raise ValueError(f"convdeq: batch must be in 1..{len(images)}, got {batch}")
        self.groups = groups
        self.indices = torch.randperm(len(images), generator=generator)[:batch]
        self.x = self.tensor(images[self.indices])
        self.labels = labels[self.indices]
        self.one_hot = self.tensor(torch.nn.functional.one_hot(self.labels, N_CLASSES))
        self.shifts = shift_matrices(self.dtype, self.device)

        Kz = self.randn(generator, c, c, 9)
        Kx = self.randn(generator, c, 1, 9)
        gamma = 1 + 0.2 * self.randn(generator, c)
        beta = 0.5 * self.randn(generator, c)
        V = self.randn(generator, N_CLASSES, c) * (3 / c**0.5)
        # the injection scaled so its least per-sample, per-group std is 1 (see the docstring)
        injection_std = self.group_std(self.conv(Kx, self.x.reshape(batch, 1, PIXELS)))
        Kx = Kx / injection_std.min()
        gamma_max = float(gamma.abs().max())
        self.rho = lipschitz / (gamma_max + lipschitz * groups**0.5)
        Kz = Kz * (self.rho / torch.linalg.matrix_norm(dense_conv(Kz, self.shifts), ord=2))
        self.theta = {
            "Kz": Kz,
            "Kx": Kx,
            "gamma": gamma,
            "beta": beta,
            "V": V,
            "bias": torch.zeros(N_CLASSES, dtype=self.dtype, device=self.device),
        }
        mean_image = self.x.mean(dim=0)
        self.directions = {"t": mean_image / torch.linalg.vector_norm(mean_image)}

    # ----------------------------------------------------------- the pieces
    def conv(self, K, u):
        """3 x 3 zero-padded convolution of u (batch, c_in, 64) with K (c_out, c_in, 9)."""
        return self.xp.einsum("oik,kpq,biq->bop", K, self.shifts, u)

    def group_std(self, u):
        """(batch, groups): each sample's group standard deviation (no eps), torch only."""
        grouped = u.reshape(u.shape[0], self.groups, -1)
        return grouped.std(dim=2, unbiased=False)

    def group_norm(self, u):
        """u (batch, c, 64) normalised per sample and group of channels, before the affine."""
        xp = self.xp
        batch, c = u.shape[0], u.shape[1]
        grouped = u.reshape(batch, self.groups, (c // self.groups) * PIXELS)
        centred = grouped - xp.mean(grouped, axis=2, keepdims=True)
        variance = xp.mean(centred**2, axis=2, keepdims=True)
        return (centred / xp.sqrt(variance + self.eps)).reshape(batch, c, PIXELS)

    def pre_norm(self, theta, x, z):
        batch = z.shape[0]
        c = theta["Kz"].shape[0]
        return self.conv(theta["Kz"], z.reshape(batch, c, PIXELS)) + self.conv(
            theta["Kx"], x.reshape(batch, 1, PIXELS)
        )

    # --------------------------------------------------------- the problem
    def f(self, theta, x, z):
        normed = self.group_norm(self.pre_norm(theta, x, z))
        out = self.xp.tanh(theta["gamma"][:, None] * normed + theta["beta"][:, None])
        return out.reshape(z.shape[0], -1)

    def output(self, theta, z):
        c = theta["Kz"].shape[0]
        pooled = self.xp.mean(z.reshape(z.shape[0], c, PIXELS), axis=2)
        return pooled @ theta["V"].T + theta["bias"]

    log_softmax = Digits.log_softmax

    def data_loss(self, theta, x, z):
        log_p = self.log_softmax(self.output(theta, z))
        return -self.xp.mean(self.xp.sum(self.one_hot * log_p, axis=1))
