"""Relative error of a strategy's answer against the oracle's."""

from __future__ import annotations

import torch

from deqbench.backends import to_torch


def relative_error(value, reference) -> float:
    """|value - reference| / |reference| (Frobenius), computed in float64 on the CPU.

    Either side may be a torch tensor or a JAX array.

    Where the reference is exactly zero the absolute error is returned, so a zero answer
    (a linear DEQ's second derivative) is still checked. NaN or inf in the value gives inf.
    """
    value, reference = to_torch(value), to_torch(reference)
    if value.shape != reference.shape:
        raise ValueError(f"shape {tuple(value.shape)} does not match reference {tuple(reference.shape)}")
    if not torch.isfinite(value).all():
        return float("inf")
    error = (value - reference).norm()
    scale = reference.norm()
    return float(error / scale) if scale > 0 else float(error)


def relative_errors(values: dict, reference: dict) -> dict[str, float]:
    """Per output tensor; a key missing on either side is an error, never a silent pass."""
    if set(values) != set(reference):
        raise KeyError(f"outputs {sorted(values)} do not match reference outputs {sorted(reference)}")
    return {name: relative_error(values[name], reference[name]) for name in reference}
