"""Per-step learning rates (and momenta), computed once by onespec and handed to every framework,
so no framework's own scheduler (stepped per epoch or per step as its user calls it) is involved.

``lrs[t]`` is the rate used by optimizer step ``t`` (0-based). ``by: epoch`` holds each epoch's
first value for the whole epoch (MindSpore's ``nn.cosine_decay_lr``, torch schedulers stepped per
epoch); ``by: step`` changes it every step. ``onecycle`` reproduces torch's ``OneCycleLR`` step for
step, momentum cycling included (torch cycles the optimizer's momentum, or Adam's beta1,
between ``max_momentum`` and ``base_momentum``; a port that copies only the LR loses it).
"""
from __future__ import annotations

import math

import numpy as np

from .recipe import Recipe


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _lin(start: float, end: float, pct: float) -> float:
    return (end - start) * pct + start


def onecycle(total: int, max_lr: float, s) -> tuple[np.ndarray, np.ndarray]:
    """torch ``OneCycleLR`` (its ``_anneal_func`` and phase boundaries) for ``total`` steps."""
    initial = max_lr / s.div_factor
    final = initial / s.final_div_factor
    anneal = _cos if s.anneal == "cos" else _lin
    if s.three_phase:
        phases = [(float(s.pct_start * total) - 1, initial, max_lr, s.max_momentum, s.base_momentum),
                  (float(2 * s.pct_start * total) - 2, max_lr, initial, s.base_momentum, s.max_momentum),
                  (total - 1, initial, final, s.max_momentum, s.max_momentum)]
    else:
        phases = [(float(s.pct_start * total) - 1, initial, max_lr, s.max_momentum, s.base_momentum),
                  (total - 1, max_lr, final, s.base_momentum, s.max_momentum)]
    lrs, moms = np.empty(total), np.empty(total)
    for t in range(total):
        start = 0.0
        for i, (end, lr0, lr1, m0, m1) in enumerate(phases):
            if t <= end or i == len(phases) - 1:
                pct = (t - start) / (end - start)
                lrs[t], moms[t] = anneal(lr0, lr1, pct), anneal(m0, m1, pct)
                break
            start = end
    return lrs, moms


def schedule(recipe: Recipe, steps_per_epoch: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(lr per step, momentum per step or None) for the whole run."""
    s, lr = recipe.schedule, recipe.optimizer.lr
    total = steps_per_epoch * recipe.epochs
    if s.name == "onecycle":
        lrs, moms = onecycle(total, lr, s)
        return lrs, (moms if s.cycle_momentum else None)
    t = np.arange(total, dtype=np.float64)
    unit = t if s.by == "step" else np.floor(t / steps_per_epoch) * steps_per_epoch
    warm = s.warmup_epochs * steps_per_epoch
    if s.name == "constant":
        lrs = np.full(total, lr)
    elif s.name == "step":
        epoch = np.floor(unit / steps_per_epoch)
        lrs = lr * s.gamma ** np.array([sum(e >= m for m in s.milestones) for e in epoch], dtype=np.float64)
    else:  # cosine from the end of warmup to the last step
        span = max(total - warm, 1)
        pct = np.clip((unit - warm) / span, 0, 1)
        lrs = s.min_lr + (lr - s.min_lr) * 0.5 * (1 + np.cos(np.pi * pct))
    if warm > 0:  # linear warmup from warmup_start_lr (PaddleClas' LinearWarmup)
        w = unit < warm
        lrs = np.where(w, s.warmup_start_lr + (lr - s.warmup_start_lr) * unit / warm, lrs)
    return lrs, None
