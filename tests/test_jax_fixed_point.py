"""deqbench.jax.fixed_point, the public JAX layer: exact at every order on a user's layer.

Its answers on the zoo are test_verification's (the `jax-fixed-point` strategy); here, a
user's f(params, x, z) with a pytree of parameters: every composition of jax.grad,
jax.jacfwd, jax.jacrev, jax.hessian and jax.jvp up to third order against the same
transforms of an unrolled iteration (a reference that shares nothing with the layer's
rule), under jit and vmap, in float32, with an equinox module, with its warnings,
statistics and bad input; and no JAX import for ``import deqbench``.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

pytest.importorskip("jax")

import numpy as np  # noqa: E402

import deqbench  # noqa: E402
from deqbench.backends import import_jax  # noqa: E402

jax = import_jax()
jnp = jax.numpy
from deqbench.jax import fixed_point  # noqa: E402

M, N, BATCH = 4, 2, 3
TIGHT = {"tol": 1e-13, "backward_tol": 1e-13, "max_iter": 1000, "backward_max_iter": 1000}


def f(params, x, z):
    """tanh(W z + U x + b) + 0.1 sin(z): contractive, f_zz and f_zx non-zero."""
    return jnp.tanh(z @ params["W"].T + x @ params["U"].T + params["b"]) + 0.1 * jnp.sin(z)


def make(dtype=jnp.float64):
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {
        "U": jax.random.normal(keys[1], (M, N)),
        "b": 0.1 * jax.random.normal(keys[2], (M,)),
    }
    params["W"] = 0.2 * jax.random.normal(keys[0], (M, M)) / M**0.5  # contraction about 0.5
    cast = lambda a: a.astype(dtype)  # noqa: E731 - the same numbers in float32 as in float64
    return jax.tree_util.tree_map(cast, params), cast(jax.random.normal(keys[3], (BATCH, N)))


def layer(params, x):
    return fixed_point(f, params, x, jnp.zeros((*x.shape[:-1], M), x.dtype), **TIGHT)


def unrolled(params, x):
    # 80 steps at a contraction of about 0.5: converged to rounding. A fori_loop with static
    # bounds (a scan) keeps the traced program one step long, and JAX differentiates it.
    z0 = jnp.zeros((*x.shape[:-1], M), x.dtype)
    return jax.lax.fori_loop(0, 80, lambda _, z: f(params, x, z), z0)


def close(a, b, rtol=1e-9, atol=1e-11):
    jax.tree_util.tree_map(lambda u, v: np.testing.assert_allclose(u, v, rtol=rtol, atol=atol), a, b)


def third_order_loss(z_star):
    """A third derivative along an input direction (nested jvp), then a loss on it."""

    def loss(params, x):
        e = jnp.broadcast_to(jnp.array([1.0, -0.5], x.dtype), x.shape)
        d = lambda x_: z_star(params, x_)  # noqa: E731
        for _ in range(3):
            d = (lambda g: lambda x_: jax.jvp(g, (x_,), (e,))[1])(d)
        return jnp.sum(d(x) ** 2)

    return loss


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda L: jax.grad(L), id="grad"),
        pytest.param(lambda L: jax.jacfwd(jax.grad(L)), id="jacfwd(grad)"),
        pytest.param(lambda L: jax.hessian(L), id="hessian"),
    ],
)
def test_transforms_of_a_loss_match_the_unrolled_iteration(transform):
    params, x = make()

    def loss_of(z_star):
        return lambda p: jnp.sum(jnp.sin(z_star(p, x)) * x[:, :1])

    close(jax.jit(transform(loss_of(layer)))(params), jax.jit(transform(loss_of(unrolled)))(params))


def test_third_order_in_x_then_grad_in_params_under_jit():
    params, x = make()
    mine = jax.jit(jax.grad(third_order_loss(layer)))(params, x)
    close(mine, jax.jit(jax.grad(third_order_loss(unrolled)))(params, x))


def test_jvp_and_hessian_in_the_input():
    params, x = make()
    tangent = jnp.ones_like(x)
    close(
        jax.jvp(lambda x_: layer(params, x_), (x,), (tangent,)),
        jax.jvp(lambda x_: unrolled(params, x_), (x,), (tangent,)),
    )
    hessian = jax.jit(jax.hessian(lambda x_: jnp.sum(layer(params, x_) ** 3)))(x)
    close(hessian, jax.jit(jax.hessian(lambda x_: jnp.sum(unrolled(params, x_) ** 3)))(x))


def test_vmap_over_samples_and_per_sample_gradients():
    params, x = make()
    single = lambda p, x_: fixed_point(f, p, x_, jnp.zeros(M), **TIGHT)  # noqa: E731 - unbatched state
    close(jax.vmap(single, in_axes=(None, 0))(params, x), unrolled(params, x))
    per_sample = jax.jit(jax.vmap(jax.grad(lambda p, x_: jnp.sum(single(p, x_) ** 2)), in_axes=(None, 0)))
    reference = jax.jit(jax.vmap(jax.grad(lambda p, x_: jnp.sum(unrolled(p, x_) ** 2)), in_axes=(None, 0)))
    close(per_sample(params, x), reference(params, x))


def test_float32():
    params, x = make(jnp.float32)
    z = fixed_point(f, params, x, jnp.zeros((BATCH, M), jnp.float32))
    assert z.dtype == jnp.float32
    default_tol = lambda p, x_: fixed_point(f, p, x_, jnp.zeros((BATCH, M), x_.dtype))  # noqa: E731
    grads = jax.jit(jax.grad(third_order_loss(default_tol)))(params, x)
    params64, x64 = make()
    close(grads, jax.jit(jax.grad(third_order_loss(unrolled)))(params64, x64), rtol=1e-3, atol=1e-4)


def test_an_equinox_module_as_parameters():
    eqx = pytest.importorskip("equinox")

    class Cell(eqx.Module):
        linear: eqx.nn.Linear
        W: jax.Array
        activation: object = jnp.tanh  # a non-array leaf: held static

        def __call__(self, x, z):
            return self.activation(z @ self.W.T + jax.vmap(self.linear)(x))

    key_linear, key_w = jax.random.split(jax.random.PRNGKey(1))
    cell = Cell(eqx.nn.Linear(N, M, key=key_linear), 0.3 * jax.random.normal(key_w, (M, M)) / M**0.5)
    x = make()[1]

    def loss(model, z_star):
        return jnp.sum(z_star(model, x) ** 2)

    mine = eqx.filter_grad(
        lambda c: loss(
            c, lambda m, x_: fixed_point(lambda m_, xx, z: m_(xx, z), m, x_, jnp.zeros((BATCH, M)), **TIGHT)
        )
    )(cell)

    def unrolled_cell(model, x_):
        return jax.lax.fori_loop(0, 80, lambda _, z: model(x_, z), jnp.zeros((BATCH, M)))

    reference = eqx.filter_grad(lambda c: loss(c, unrolled_cell))(cell)
    close(eqx.filter(mine, eqx.is_array), eqx.filter(reference, eqx.is_array))


def test_statistics_by_callback_and_a_warning_when_a_solve_falls_short():
    params, x = make()
    seen = []
    jax.grad(lambda p: jnp.sum(fixed_point(f, p, x, jnp.zeros((BATCH, M)), callback=seen.append)))(params)
    jax.effects_barrier()
    assert [s.phase for s in seen] == ["forward", "backward"] and all(s.converged for s in seen)
    with pytest.warns(deqbench.NotConvergedWarning, match="forward solve"):
        jax.block_until_ready(fixed_point(f, params, x, jnp.zeros((BATCH, M)), max_iter=2))
        jax.effects_barrier()
    with pytest.warns(deqbench.NotConvergedWarning, match="backward solve"):
        loss = lambda p: jnp.sum(fixed_point(f, p, x, jnp.zeros((BATCH, M)), backward_max_iter=2))  # noqa: E731
        jax.block_until_ready(jax.grad(loss)(params))
        jax.effects_barrier()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jax.block_until_ready(fixed_point(f, params, x, jnp.zeros((BATCH, M))))
        jax.effects_barrier()


def test_bad_input_is_refused_with_a_clear_error():
    params, x = make()
    with pytest.raises(TypeError, match="z_init must be an array"):
        fixed_point(f, params, x, M)
    with pytest.raises(ValueError, match="unknown solver"):
        fixed_point(f, params, x, jnp.zeros((BATCH, M)), solver="newton")


def test_import_deqbench_and_its_torch_layer_do_not_import_jax():
    code = (
        "import sys, deqbench, deqbench.nn; deqbench.get_strategy('jax-fixed-point'); "
        "print('jax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
