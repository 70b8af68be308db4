"""deqbench's drop-in fixed-point layer for JAX (imports JAX; ``import deqbench`` does not).

::

    from deqbench.jax import fixed_point

    z = fixed_point(f, params, x, z_init)   # z = f(params, x, z), differentiable at any order

See :func:`fixed_point`.
"""

from deqbench.jax._fixed_point import fixed_point

__all__ = ["fixed_point"]
