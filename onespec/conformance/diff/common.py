"""What every part of ``onespec diff`` shares: the tolerance, the error type, and the three
measures of how far a tensor is from the reference's (outputs, gradients, running statistics)."""
from __future__ import annotations

import numpy as np

from ...errors import OnespecError

TOL = 1e-4  # float32 vs float64 per op is ~1e-7-1e-6 relative; a convention error is >= 1e-3
EPS32 = 2.0 ** -24  # float32's unit roundoff


class DiffError(OnespecError, ValueError):
    pass


def rel(got, want) -> float:
    """Relative L2 error (``inf`` when the shapes differ)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))


def grad_err(got: dict, want: dict, terms: dict | None = None) -> tuple[float, str]:
    """Worst relative L2 error over gradient tensors, each measured against the largest of its own
    norm, 1e-3 x the largest gradient's norm, and what float32 can resolve of it divided by the
    tolerance. A parameter gradient is a sum (over the batch and positions) of terms; float32
    resolves it to about ``EPS32`` x the sum of the terms' magnitudes (``terms``: per tensor, the
    norm of that sum; :func:`resolution_scale`). A gradient that cancels (a bias whose output feeds
    a one-group GroupNorm sums to zero in exact arithmetic) is noise in every framework; noise is
    not compared with noise: the error of such a tensor, however large against its own norm, is
    within the tolerance as long as it is within float32's resolution."""
    if not want:
        return 0.0, ""
    floor = 1e-3 * max(float(np.linalg.norm(v)) for v in want.values())
    terms = terms or {}
    worst, name = 0.0, ""
    for k, w in want.items():
        g = got.get(k)
        if g is None or np.shape(g) != np.shape(w):
            return float("inf"), k
        resolved = EPS32 * float(terms.get(k, 0.0)) / TOL
        e = float(np.linalg.norm(np.asarray(g, np.float64) - w)) / max(float(np.linalg.norm(w)), floor, resolved, 1e-30)
        if e > worst:
            worst, name = e, k
    return worst, name


def resolution_scale(vjp, x, gy) -> dict[str, float]:
    """Per parameter tensor, the norm of the sum of its gradient terms' magnitudes, from the
    reference's ``vjp(x, gy)``: with ``|gy|`` and ``|x|`` every product a weight or bias gradient
    sums is non-negative, so nothing cancels (exact for convolutions, linear layers and biases;
    for a norm's scale, whose terms are normalised inputs, the larger of the sums with ``x`` and
    ``|x|`` gives the order of magnitude)."""
    gy = np.abs(np.asarray(gy, np.float64))
    _, _, a = vjp(np.abs(np.asarray(x, np.float64)), gy)
    _, _, b = vjp(np.asarray(x, np.float64), gy)
    return {k: float(np.linalg.norm(np.maximum(np.abs(a[k]), np.abs(b[k])))) for k in a}


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
