"""`analytic-seed`: the seed document's final formula, taken literally. Expected to be wrong.

The seed ("Second derivative (and further) of deep equilibrium/implicit models", section
"Second-order derivatives of DEQs") arrives at

    H_{z*, t x} = -(J - I)^{-1} [ H_{f, t x} - H_{f, z x} x_2 J_{z*, t} ]

with partial derivatives of f at the fixed point, dense. It differs from the correct rule
(docs/explanations/mathematics.md) by a sign (it takes (J - I)^{-1} f_t for J_{z*, t}) and by dropping the
terms that come from z* depending on x (f_tz z*_x and f_zz[z', z*_x]). deqbench keeps it so
that its verification suite shows a wrong derivative being caught. First-order queries use
the seed's correct first section (the implicit function theorem, Bai et al.).

Dense tensors per sample (m x m x n): small problems only.
"""

import torch
from torch.func import jacfwd, vmap

from deqbench.strategies.base import Strategy


class AnalyticSeed(Strategy):
    name = "analytic-seed"
    description = "the seed's literal dense formula: right at first order, wrong at second"
    supported_queries = frozenset({"forward", "jvp", "jvp2", "grad", "hessian"})
    exact_queries = frozenset({"forward", "jvp", "grad"})

    def fixed_point(self, problem):
        with torch.no_grad():
            return self.solve_forward(lambda z: problem.f(problem.theta, problem.x, z), problem.z_init())

    @staticmethod
    def partials(problem, z):
        """Per-sample dense J (m,m), f_x (m,n), f_xx (m,n,n), H_{f,zx} (m,m,n).

        Forward mode throughout: torch.func's reverse transforms refuse the
        saved_tensors_hooks that the harness measures memory with.
        """

        def one(x_b, z_b):
            return problem.f(problem.theta, x_b[None], z_b[None])[0]

        per_sample = lambda fn: vmap(fn)(problem.x, z)  # noqa: E731
        J = per_sample(jacfwd(one, argnums=1))
        f_x = per_sample(jacfwd(one, argnums=0))
        f_xx = per_sample(jacfwd(jacfwd(one, argnums=0), argnums=0))
        f_zx = per_sample(jacfwd(jacfwd(one, argnums=1), argnums=0))
        return J, f_x, f_xx, f_zx

    @staticmethod
    def seed_hessian(J, f_x, f_xx, f_zx):
        """The seed's formula for every pair (x_k, x_l): (batch, m, n, n)."""
        eye = torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)
        J_minus_I = J - eye
        jac_z = -torch.linalg.solve(J_minus_I, f_x)  # J_{z*,x}, the seed's eq. (deq-jacobian)
        # H_{f,zx_l} x_2 J_{z*,x_k}: sum_j f_zx[i, j, l] jac_z[j, k]
        coupling = torch.einsum("bijl,bjk->bikl", f_zx, jac_z)
        bracket = (f_xx - coupling).flatten(2)
        return -torch.linalg.solve(J_minus_I, bracket).reshape(f_xx.shape), jac_z

    # -------------------------------------------------------------- queries
    @torch.no_grad()
    def forward(self, problem):
        z = self.fixed_point(problem)
        return {"z_star": z, "output": problem.output(problem.theta, z)}

    @torch.no_grad()
    def jvp(self, problem):
        J, f_x, _, _ = self.partials(problem, self.fixed_point(problem))
        eye = torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)
        jac_z = -torch.linalg.solve(J - eye, f_x)
        return {"dz_dt": jac_z @ problem.direction("jvp")}

    @torch.no_grad()
    def jvp2(self, problem):
        e = problem.direction("jvp2")
        hessian, _ = self.seed_hessian(*self.partials(problem, self.fixed_point(problem)))
        return {"d2z_dt2": torch.einsum("bikl,k,l->bi", hessian, e, e)}

    @torch.no_grad()
    def hessian(self, problem):
        hessian, _ = self.seed_hessian(*self.partials(problem, self.fixed_point(problem)))
        return {"d2z_dx2": hessian}

    def grad(self, problem):
        """The seed's first section: g = u (I - J)^{-1} densely, then g f_theta."""
        z = self.fixed_point(problem)
        theta = {k: v.detach().clone().requires_grad_(True) for k, v in problem.theta.items()}
        z_leaf = z.clone().requires_grad_(True)
        loss = problem.data_loss(theta, problem.x, z_leaf)
        loss_theta = torch.autograd.grad(
            loss, list(theta.values()), retain_graph=True, allow_unused=True, materialize_grads=True
        )
        (u,) = torch.autograd.grad(loss, z_leaf)
        J, _, _, _ = self.partials(problem, z)
        eye = torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)
        g = torch.linalg.solve((eye - J).transpose(1, 2), u)
        f_z = problem.f(theta, problem.x, z)
        via_z = torch.autograd.grad(f_z, list(theta.values()), g, allow_unused=True, materialize_grads=True)
        return {name: (a + b).detach() for name, a, b in zip(theta, loss_theta, via_z, strict=True)}
