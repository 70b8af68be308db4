"""`linear`: a linear DEQ, z = W z + U x + b with |W| < 1, whose every answer is closed form.

With M = (I - W)^{-1}:

    z* = M (U x + b),    dz*/dtau = M U e  (the same for every sample),   d2z*/dtau2 = 0,

and the input Hessian is zero. The parameter gradients follow from dM = M dW M: for a loss
with sensitivities g_b = dL/dz*_b and g_v = dL/dv (v = M U e), the adjoints a_b = M^T g_b and
a_v = M^T g_v give

    dL/dW = sum_b a_b z*_b^T + a_v v^T,   dL/dU = sum_b a_b x_b^T + a_v e^T,   dL/db = sum_b a_b.

The references use one explicit dense inverse and these formulas: no iteration.
"""

import torch

from deqbench.problems.tanh import TanhDEQ


class LinearDEQ(TanhDEQ):
    """tanh's parameters, inputs, directions and first two losses, without the tanh."""

    name = "linear"
    description = "linear z = W z + U x + b with |W| < 1: every derivative in closed form"
    presets = {key: TanhDEQ.presets[key] for key in ("quick", "default")}

    def f(self, theta, x, z):
        return z @ theta["W"].T + x @ theta["U"].T + theta["b"]

    # ---------------------------------------------------------------- losses
    # The closed-form gradients below are worked out for these losses (the data and
    # physics losses are tanh's; this second-order one adds z_x to the residual).
    physics2_partials = {"z_x": "x", "z_xx": "xx"}

    def physics2_loss(self, theta, x, z, d):
        return self.mean_square(d["z_xx"] + d["z_x"] + z)

    # ------------------------------------------------------------ closed form
    def resolvent(self) -> torch.Tensor:
        """M = (I - W)^{-1}, dense."""
        W = self.theta["W"]
        return torch.linalg.inv(torch.eye(W.shape[0], dtype=W.dtype, device=W.device) - W)

    def fixed_point(self) -> torch.Tensor:
        return (self.x @ self.theta["U"].T + self.theta["b"]) @ self.resolvent().T

    def tangent(self, e: torch.Tensor) -> torch.Tensor:
        """dz*/dtau = M U e, broadcast to every sample, (batch, m)."""
        v = self.resolvent() @ (self.theta["U"] @ e)
        return v.expand(self.batch, -1)

    def gradient(self, e: torch.Tensor, g_z: torch.Tensor, g_v: torch.Tensor) -> dict[str, torch.Tensor]:
        """dL/dtheta from the loss's sensitivities to z*_b (g_z, (batch, m)) and to the shared
        tangent v = M U e (g_v, (m,)); see the module docstring."""
        M = self.resolvent()
        adjoints, adjoint_v = g_z @ M, g_v @ M  # rows a_b = M^T g_b
        z, v = self.fixed_point(), M @ (self.theta["U"] @ e)
        return {
            "W": adjoints.T @ z + torch.outer(adjoint_v, v),
            "U": adjoints.T @ self.x + torch.outer(adjoint_v, e),
            "b": adjoints.sum(dim=0),
        }

    def loss_gradient(self, query: str) -> dict[str, torch.Tensor]:
        """Sensitivities of each loss by hand. Second derivatives are zero for every theta, so
        in the pinn2 loss z_xx contributes nothing, and the residual is that of pinn along x."""
        z = self.fixed_point()
        if query == "grad":
            e = self.direction("jvp")
            return self.gradient(e, (z - self.target) / self.batch, torch.zeros_like(z[0]))
        e = self.directions["t" if query == "pinn_grad" else "x"]
        residual = self.tangent(e) + z  # z_t + z, and z_xx + z_x + z with z_xx = 0
        g_z = 2 * residual / self.batch
        return self.gradient(e, g_z, g_z.sum(dim=0))

    def reference(self, query):
        if self.unsupported_reason(query) is not None:
            return None
        with torch.no_grad():
            if query == "forward":
                z = self.fixed_point()
                return {"z_star": z, "output": self.output(self.theta, z)}
            if query == "jvp":
                return {"dz_dt": self.tangent(self.direction(query))}
            if query == "jvp2":
                return {"d2z_dt2": torch.zeros(self.batch, self.m, dtype=self.dtype, device=self.device)}
            if query == "hessian":
                shape = (self.batch, self.m, self.n, self.n)
                return {"d2z_dx2": torch.zeros(shape, dtype=self.dtype, device=self.device)}
            return self.loss_gradient(query)
