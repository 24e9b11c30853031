"""Test weights for numerical conformance: ``init_state`` with BatchNorm statistics calibrated
on the seeded batch. A test-data choice, kept out of the numpy backend (the oracle).

Random running statistics let activations grow layer after layer (MicroNet's reach 1e5 and
saturate its shift-max gates, where float32 rounding flips hardsigmoid clips); calibrated ones
keep every layer's output O(1), like a trained network's.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..backends import numpy as npb
from ..spec import ModelSpec, Parallel, Sequential

# Calibrated residual bodies (the branch beside an identity shortcut) end in a BN whose output is
# scaled down by this factor (its gamma and beta; its variance when it has none). A random deep
# residual net whose bodies add O(1) to the stream at every block is chaotic: ResNet-152's 36-block
# stage amplified float32 rounding (6e-8) to 2.7e-4 against float64. Trained residual nets have
# small bodies (hence zero-init-residual, Goyal et al. 2017); at 1/RESIDUAL_DAMPING every body still
# moves the output far above any tolerance.
RESIDUAL_DAMPING = 4.0


def _last_bn(node, path: str) -> str | None:
    """Path of the last BatchNorm on ``node``'s main path (nested sequences followed; gates not)."""
    if node.op == "batchnorm":
        return path
    if isinstance(node, Sequential):
        for c in reversed(node.layers):
            if c.op == "batchnorm" or isinstance(c, Sequential):
                found = _last_bn(c, f"{path}.{c.name}")
                if found:
                    return found
    return None


def residual_bns(spec: ModelSpec) -> set[str]:
    """Paths of the last BN of every residual body (a branch of an ``add`` beside an identity)."""
    out: set[str] = set()

    def visit(node, path):
        if isinstance(node, Parallel) and node.merge == "add" and any(b.op == "identity" for b in node.branches):
            out.update(p for b in node.branches if (p := _last_bn(b, f"{path}.{b.name}")))
        for c in node.children():
            visit(c, f"{path}.{c.name}")

    for layer in spec.layers:
        visit(layer, layer.name)
    return out


def calibrate(spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray):
    """``state`` with every BN's running statistics set from its input on batch ``x`` (layer by
    layer: half the batch mean, the second moment about it, floored at a tenth of the layer's
    mean: no x - mean cancels, no near-constant channel gets a 1/sqrt(eps) gain), residual bodies
    damped (``RESIDUAL_DAMPING``), and the numpy backend's eval output of that state on ``x``.
    Statistics are rounded to the state's dtype before use, so the output is exactly that of the
    returned state."""
    net = npb.build(spec)
    npb.load_state(net, spec, state)
    damped = residual_bns(spec)
    dtypes = {k: np.asarray(v).dtype for k, v in state.items()}

    def hook(path):
        def set_stats(m, x):
            axes = (0,) + tuple(range(2, x.ndim))
            mean = 0.5 * x.mean(axis=axes)
            var = ((x - mean.reshape((1, -1) + (1,) * (x.ndim - 2))) ** 2).mean(axis=axes)
            var = np.maximum(var, 0.1 * var.mean())
            if path in damped and "weight" in m.params:  # gamma and beta: damped in train mode too
                for k in ("weight", "bias"):
                    m.params[k] = m.params[k] / RESIDUAL_DAMPING
            elif path in damped:
                var = var * RESIDUAL_DAMPING ** 2
            m.params["running_mean"], m.params["running_var"] = mean, var
            for k in m.params:
                m.params[k] = m.params[k].astype(dtypes[f"{path}.{k}"]).astype(np.float64)
        return set_stats

    for path, m in net.named_modules():
        if m.op == "batchnorm":
            m.pre_hooks.append(hook(path))
    y, _ = npb.forward(net, x)
    return npb.get_state(net, spec), y
