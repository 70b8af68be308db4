"""`planted`: a fixed point known in closed form, for testing the oracle (docs/explanations/oracles.md).

    f(theta, x, z) = h(x) + A (g(z + D x) - g(h(x) + D x)),   h(x) = tanh(C x + c),  g = tanh

At z = h(x) the bracket vanishes, so z* = h(x) exactly, whatever A and D are; since g is
1-Lipschitz and |A| < 1 (spectral norm) the layer is a contraction in z. Yet nothing about f
is trivial: J = A diag(g'), f_zz, f_zx (through the shift D x) and f_xx are all non-zero.
Every query's answer therefore follows from the explicit function h alone: its derivatives
in x by hand (any partial of order k along directions e_1..e_k is tanh^(k)(a) times the
product of the C e_i), and the parameter gradients by plain autograd on h. The second
physics loss uses mixed partials of orders 2 and 3 (z_tx, z_txx), so the oracles' mixed
partials are checked against a closed form too. z* does not depend on A or
D, so every gradient with respect to them is zero.
"""

import torch

from deqbench.problems.tanh import ToyDEQ, spectral_scaled


class Planted(ToyDEQ):
    name = "planted"
    description = "planted fixed point z* = tanh(C x + c) of a contractive layer with non-zero curvature"
    backends = ("torch", "jax")
    presets = {
        "quick": {"m": 8, "n": 3, "batch": 4, "rho": 0.8},
        "default": {"m": 32, "n": 4, "batch": 16, "rho": 0.8},
    }

    def build(self, generator, *, m, n, batch, rho):
        self.theta = {
            "A": spectral_scaled(self.randn(generator, m, m), rho),
            "C": self.randn(generator, m, n) / n**0.5,
            "c": 0.5 * self.randn(generator, m),
            "D": 0.5 * self.randn(generator, m, n) / n**0.5,
        }
        self.draw_inputs(generator, m=m, n=n, batch=batch)

    # ----------------------------------------------------------------- layer
    def planted(self, theta, x):
        """h(x) = tanh(C x + c): the fixed point, by construction."""
        return self.xp.tanh(x @ theta["C"].T + theta["c"])

    def f(self, theta, x, z):
        h = self.planted(theta, x)
        shift = x @ theta["D"].T
        return h + (self.xp.tanh(z + shift) - self.xp.tanh(h + shift)) @ theta["A"].T

    # ---------------------------------------------------------------- losses
    # the data and first physics loss are the toy ones; this one is on mixed partials
    physics2_partials = {"z_tx": "tx", "z_txx": "txx"}

    def physics2_loss(self, theta, x, z, d):
        return self.mean_square(d["z_txx"] + 0.5 * d["z_tx"] + z)

    # ------------------------------------------------------------ closed form
    def planted_partial(self, theta, index):
        """The partial of h along the named directions ``index`` (order 0 to 3), by hand.

        With a = C x + c, h = tanh(a): the partial is tanh^(k)(a) * prod_i (C e_i), where
        tanh^(1) = 1 - h^2, tanh^(2) = -2 h (1 - h^2), tanh^(3) = -2 (1 - h^2) (1 - 3 h^2).
        """
        h = self.planted(theta, self.x)
        slope = 1 - h**2
        tanh_derivative = [h, slope, -2 * h * slope, -2 * slope * (1 - 3 * h**2)][len(index)]
        for name in index:
            tanh_derivative = tanh_derivative * (theta["C"] @ self.directions[name])
        return tanh_derivative

    def planted_hessian(self):
        """d2h_i/dx_k dx_l = -2 h_i (1 - h_i^2) C_ik C_il, (batch, m, n, n)."""
        h = self.planted(self.theta, self.x)
        curvature = -2 * h * (1 - h.square())
        C = self.theta["C"]
        return curvature[:, :, None, None] * C[None, :, :, None] * C[None, :, None, :]

    def planted_loss(self, query, theta):
        """A gradient query's loss evaluated on h and its hand-written partials."""
        h = self.planted(theta, self.x)
        if query == "grad":
            return self.data_loss(theta, self.x, h)
        loss, partials = self.physics_query(query)
        return loss(theta, self.x, h, {name: self.planted_partial(theta, i) for name, i in partials.items()})

    def planted_gradient(self, query):
        """Autograd on the explicit h: only C and c move z*; A and D get exact zeros."""
        theta = {name: value.detach().clone() for name, value in self.theta.items()}
        moving = {name: theta[name].requires_grad_(True) for name in ("C", "c")}
        loss = self.planted_loss(query, theta)
        grads = dict(zip(moving, torch.autograd.grad(loss, list(moving.values())), strict=True))
        return {name: grads.get(name, torch.zeros_like(value)) for name, value in theta.items()}

    def reference(self, query):
        if self.unsupported_reason(query) is not None:
            return None
        with torch.no_grad():
            if query == "forward":
                z = self.planted(self.theta, self.x)
                return {"z_star": z, "output": self.output(self.theta, z)}
            if query == "jvp":
                return {"dz_dt": self.planted_partial(self.theta, "t")}
            if query == "jvp2":
                return {"d2z_dt2": self.planted_partial(self.theta, "tt")}
            if query == "hessian":
                return {"d2z_dx2": self.planted_hessian()}
        return self.planted_gradient(query)
