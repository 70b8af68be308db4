"""Tolerances that follow the dtype: the one place that says what each dtype can reach.

``SOLVER_TOL`` is the relative residual a fixed-point solve stops at; ``VERIFY_TOL`` the
relative error against the float64 oracle above which an answer is "wrong". float32 cannot
resolve a 1e-10 residual (its eps is 1.2e-7), nor agree with float64 to 1e-6: third
derivatives (pinn2_grad) of a correct strategy lose a few more digits to rounding, up to
2e-3 on the quick problems, so float32 checks catch blunders and float64 checks digits.
"""

from __future__ import annotations

import torch

SOLVER_TOL: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 1e-5}
VERIFY_TOL: dict[torch.dtype, float] = {torch.float64: 1e-6, torch.float32: 1e-2}

#: The supported dtypes by name ("float64", "float32"): what --dtype accepts.
DTYPES: dict[str, torch.dtype] = {str(dtype).removeprefix("torch."): dtype for dtype in SOLVER_TOL}


def solver_tol(dtype: torch.dtype | str) -> float:
    """The relative residual a solve in ``dtype`` stops at (1e-10 float64, 1e-5 float32)."""
    return SOLVER_TOL[as_dtype(dtype)]


def verify_tol(dtype: torch.dtype | str) -> float:
    """The relative error vs the oracle an answer in ``dtype`` must stay within."""
    return VERIFY_TOL[as_dtype(dtype)]


def as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A supported torch dtype from itself or its name ("float32", "torch.float32")."""
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype.removeprefix("torch."), dtype)
    if not isinstance(dtype, torch.dtype) or dtype not in SOLVER_TOL:
        raise ValueError(f"unsupported dtype {dtype!r}; accepted: {', '.join(DTYPES)}")
    return dtype
