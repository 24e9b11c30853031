"""The optimizer update, written once over tensor arithmetic and run on each framework's tensors
(and on numpy arrays as the reference), so the three frameworks apply the same rule by
construction instead of by matching three native optimizers' conventions.

``ops`` supplies ``sqrt``, ``zeros_like`` (the only non-operator functions the rules need).
Formulas (``g`` gradient, ``p`` parameter, ``t`` 1-based step, ``wd`` weight decay only where the
parameter decays):
- sgd / momentum: ``g += wd * p``; ``buf = m * buf + g``; ``p -= lr * (g + m * buf if nesterov else buf)``
- adam:  ``g += wd * p``; ``m1 = b1 m1 + (1 - b1) g``; ``m2 = b2 m2 + (1 - b2) g^2``;
  ``p -= lr * (m1 / (1 - b1^t)) / (sqrt(m2 / (1 - b2^t)) + eps)``
- adamw: ``p *= 1 - lr * wd``, then adam without ``wd``.
"""
from __future__ import annotations

import math

from .recipe import Optimizer

DECAY_EXEMPT_ROLES = ("bias", "gamma", "beta")


def slots(opt: Optimizer) -> tuple[str, ...]:
    return ("buf",) if opt.name in ("sgd", "momentum") else ("m1", "m2")


def decays(opt: Optimizer, role: str) -> bool:
    return opt.weight_decay > 0 and (opt.decays_norm_and_bias or role not in DECAY_EXEMPT_ROLES)


def init(opt: Optimizer, p, ops) -> dict:
    return {k: ops.zeros_like(p) for k in slots(opt)}


def update(opt: Optimizer, p, g, state: dict, lr: float, t: int, ops, decay: bool, momentum: float | None = None):
    """New value of ``p`` (state updated in place). ``momentum`` replaces the recipe's momentum
    (or Adam's beta1) when the schedule cycles it."""
    wd = opt.weight_decay if decay else 0.0
    if opt.name in ("sgd", "momentum"):
        m = opt.momentum if momentum is None else momentum
        if wd:
            g = g + p * wd
        buf = state["buf"] * m + g
        state["buf"] = buf
        d = g + buf * m if opt.nesterov else buf
        return p - d * lr
    b1 = opt.betas[0] if momentum is None else momentum
    b2 = opt.betas[1]
    if opt.name == "adamw" and wd:
        p = p * (1.0 - lr * wd)
    elif wd:
        g = g + p * wd
    m1 = state["m1"] * b1 + g * (1.0 - b1)
    m2 = state["m2"] * b2 + g * g * (1.0 - b2)
    state["m1"], state["m2"] = m1, m2
    bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
    return p - (m1 * (lr / bc1)) / (ops.sqrt(m2 * (1.0 / bc2)) + opt.eps)


def clip_factor(norm: float, max_norm: float | None) -> float:
    """torch ``clip_grad_norm_``'s scale: ``max_norm / (norm + 1e-6)`` capped at 1."""
    if max_norm is None or not math.isfinite(norm):
        return 1.0
    return min(1.0, max_norm / (norm + 1e-6))
