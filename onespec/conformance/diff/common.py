"""What every part of ``onespec diff`` shares: the tolerance, the error type, and the three
measures of how far a tensor is from the reference's (outputs, gradients, running statistics)."""
from __future__ import annotations

import numpy as np

from ...errors import OnespecError

TOL = 1e-4  # float32 vs float64 per op is ~1e-7-1e-6 relative; a convention error is >= 1e-3


class DiffError(OnespecError, ValueError):
    pass


def rel(got, want) -> float:
    """Relative L2 error (``inf`` when the shapes differ)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))


def grad_err(got: dict, want: dict) -> tuple[float, str]:
    """Worst relative L2 error over gradient tensors, each floored at 1e-3 x the largest gradient's
    norm: a gradient that is zero in exact arithmetic (a bias before a train-mode BN) is float
    noise in both, and noise is not compared with noise."""
    if not want:
        return 0.0, ""
    floor = 1e-3 * max(float(np.linalg.norm(v)) for v in want.values())
    worst, name = 0.0, ""
    for k, w in want.items():
        g = got.get(k)
        if g is None or np.shape(g) != np.shape(w):
            return float("inf"), k
        e = float(np.linalg.norm(np.asarray(g, np.float64) - w)) / max(float(np.linalg.norm(w)), floor, 1e-30)
        if e > worst:
            worst, name = e, k
    return worst, name


def stat_err(got: dict, want: dict, roles: dict[str, str]) -> tuple[float, str]:
    """Worst error of a node's running statistics (``roles``: tensor -> ``running_mean`` |
    ``running_var``), each measured in what the statistic can resolve. A running variance
    relative to itself. A running mean relative to the channel's spread (the root of the
    reference's running variance), not to itself: the mean of a channel whose input is centred
    (an expand convolution after a BN with zero shift, as in MobileNetV2) is ~1e-8 of its spread
    in exact arithmetic, and float32's rounding of the batch sum is ~1e-7 of the spread, so the
    mean against itself is rounding against rounding in every framework."""
    worst, name = 0.0, ""
    for k, role in roles.items():
        g, w = got.get(k), np.asarray(want[k], np.float64)
        if g is None or np.shape(g) != w.shape:
            return float("inf"), k
        d = float(np.linalg.norm(np.asarray(g, np.float64) - w))
        scale = float(np.linalg.norm(w))
        if role == "running_mean":
            var = next((want[v] for v, r in roles.items() if r == "running_var"
                        and v.rsplit(".", 1)[0] == k.rsplit(".", 1)[0]), None)
            if var is not None:
                scale = max(scale, float(np.linalg.norm(np.sqrt(np.maximum(np.asarray(var, np.float64), 0)))))
        e = d / max(scale, 1e-12)
        if e > worst:
            worst, name = e, k
    return worst, name


def environment(*backends: str) -> dict:
    """The numerics environment of a report: each framework's version, threads, device and (torch
    on GPU) the TF32 and cuDNN determinism flags; numpy's version and BLAS threads."""
    from ...environment import describe

    return describe(("numpy", *backends))
