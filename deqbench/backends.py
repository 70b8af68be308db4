"""Array backends: torch and JAX, and moving a problem's numbers between them.

A problem's equations (its layer ``f``, head and losses) are written once, against the array
namespace ``self.xp`` that the problem instance carries: the ``torch`` module for a torch
instance, ``jax.numpy`` for a JAX one. Both modules take the same NumPy-style spelling of
what the equations need (``xp.tanh``, ``xp.sum(a, axis=1)``, ``xp.mean``, ``@``, ``.T``,
``**``, indexing), so one definition runs under both without a wrapper layer in between
(torch is called directly: no per-call overhead in the hot loop).

A problem's *numbers* (parameters, inputs, targets, reference trajectories) are drawn once,
in torch, from the problem's seed; :meth:`Problem.for_backend` converts them. The two
backends therefore hold the same numbers bit for bit.

JAX is imported only here, and only when a JAX instance, strategy or oracle is asked for:
a torch-only run never pays for the import. It is always imported with float64 enabled.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys
from typing import Any

import numpy as np
import torch

BACKENDS = ("torch", "jax")


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    return name


@functools.cache  # installed or not, it stays so for the process: look once
def jax_unavailable_reason() -> str | None:
    """Why JAX cannot be used here (not installed), or None; looks without importing."""
    if importlib.util.find_spec("jax") is None:
        return "JAX is not installed (pip install 'deqbench[jax]')"
    return None


def jax_versions() -> dict[str, str]:
    """The installed jax and jaxlib versions ("" where absent), read without importing."""
    versions = {}
    for package in ("jax", "jaxlib"):
        try:
            versions[f"{package}_version"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[f"{package}_version"] = ""
    return versions


@functools.cache
def import_jax():
    """The jax module, with float64 enabled before anything is traced."""
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def namespace(backend: str):
    """The array namespace a problem's equations call as ``xp``."""
    if check_backend(backend) == "torch":
        return torch
    return import_jax().numpy


def jax_device(device: str | torch.device):
    """The JAX device that plays torch's ``device``: the CPU, or the first GPU for cuda."""
    jax = import_jax()
    kind = torch.device(device).type
    if kind == "cpu":
        return jax.devices("cpu")[0]
    if kind == "cuda":
        return jax.devices("gpu")[0]
    raise ValueError(f"device {kind!r} has no JAX counterpart here; JAX runs on cpu or cuda")


def to_jax(value: Any, device: str | torch.device = "cpu") -> Any:
    """A torch tensor (or a dict of them) as JAX arrays on the matching device; the rest as is."""
    if isinstance(value, torch.Tensor):
        jax = import_jax()
        return jax.device_put(value.detach().cpu().numpy(), jax_device(device))
    if isinstance(value, dict) and any(isinstance(v, torch.Tensor) for v in value.values()):
        return {key: to_jax(item, device) for key, item in value.items()}
    return value


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor or JAX array as a float64 NumPy array on the host."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def to_torch(value: Any) -> torch.Tensor:
    """A float64 CPU tensor of a torch tensor or JAX array (for comparing with the oracle)."""
    return torch.from_numpy(np.array(to_numpy(value)))


def block_until_ready(tree: Any) -> Any:
    """Wait until JAX's asynchronous dispatch has finished everything in ``tree``.

    A no-op when JAX was never imported (a torch-only process never imports it for this).
    """
    jax = sys.modules.get("jax")
    return tree if jax is None else jax.block_until_ready(tree)
