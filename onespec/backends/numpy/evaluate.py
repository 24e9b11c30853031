"""Reference evaluator: eval-mode forward of any valid spec in pure numpy (float64).

It is the oracle the numerical conformance compares each framework with, so it is written
from the op definitions (torch semantics, documented in ``onespec.spec.nodes``), not from any
framework: grouped/depthwise/3D convolutions, ceil-mode pooling with torch's window rules,
adaptive pooling, channel split/shuffle, SE gating and MicroNet's Dynamic Shift-Max.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...spec import ModelSpec
from ...spec.nodes import _window_out
from ...weights import check_state
from ..tree import ntuple


def _windows(x: np.ndarray, k, s, d) -> np.ndarray:
    """(N, C, *L) -> (N, C, *out, *k) strided/dilated windows (a view)."""
    nd = len(k)
    span = [di * (ki - 1) + 1 for ki, di in zip(k, d)]
    w = sliding_window_view(x, span, axis=tuple(range(2, 2 + nd)))
    sl = (slice(None), slice(None)) + tuple(slice(None, None, si) for si in s) + tuple(slice(None, None, di) for di in d)
    return w[sl]


def conv(x, w, b, stride, padding, dilation, groups):
    nd = x.ndim - 2
    k = w.shape[2:]
    s, p, d = ntuple(stride, nd), ntuple(padding, nd), ntuple(dilation, nd)
    x = np.pad(x, [(0, 0), (0, 0)] + [(pi, pi) for pi in p])
    win = _windows(x, k, s, d)
    n, c = x.shape[:2]
    out_sp = win.shape[2:2 + nd]
    o = w.shape[0]
    cg, og = c // groups, o // groups
    patches = win.reshape(n, groups, cg, math.prod(out_sp), math.prod(k))
    wg = w.reshape(groups, og, cg, math.prod(k))
    if cg == 1 and og == 1:  # depthwise: a weighted sum per channel
        y = np.einsum("ngcpk,gock->ngop", patches, wg)
    else:  # per group, one BLAS contraction over (in-channel, kernel)
        y = np.stack([np.tensordot(patches[:, g], wg[g], axes=([1, 3], [1, 2])) for g in range(groups)], axis=1)
        y = np.moveaxis(y, -1, 2)  # (n, g, p, og) -> (n, g, og, p)
    y = y.reshape(n, o, *out_sp)
    if b is not None:
        y = y + b.reshape(1, o, *([1] * nd))
    return y


def _pool_geometry(x, kernel, stride, padding, ceil_mode):
    nd = x.ndim - 2
    k = ntuple(kernel, nd)
    s = ntuple(kernel if stride is None else stride, nd)
    p = ntuple(padding, nd)
    out = [_window_out(L, ki, si, pi, 1, ceil_mode) for L, ki, si, pi in zip(x.shape[2:], k, s, p)]
    # extra right padding so the last (ceil-mode) window fits
    extra = [max(0, (o - 1) * si + ki - (L + 2 * pi)) for o, si, ki, L, pi in zip(out, s, k, x.shape[2:], p)]
    return nd, k, s, p, out, extra


def maxpool(x, kernel, stride, padding, ceil_mode):
    nd, k, s, p, out, extra = _pool_geometry(x, kernel, stride, padding, ceil_mode)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pi, pi + e) for pi, e in zip(p, extra)], constant_values=-np.inf)
    win = _windows(xp, k, s, (1,) * nd)[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)]
    return win.max(axis=tuple(range(-nd, 0)))


def avgpool(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """torch semantics: zero padding; divisor = window elements inside the padded input
    (count_include_pad) or inside the input, never counting the ceil-mode overhang."""
    nd, k, s, p, out, extra = _pool_geometry(x, kernel, stride, padding, ceil_mode)
    pads = [(0, 0), (0, 0)] + [(pi, pi + e) for pi, e in zip(p, extra)]
    xp = np.pad(x, pads)
    ones = np.ones((1, 1) + x.shape[2:])
    inside = np.pad(ones, pads) if not count_include_pad else np.pad(
        np.pad(ones, [(0, 0), (0, 0)] + [(pi, pi) for pi in p], constant_values=1.0),
        [(0, 0), (0, 0)] + [(0, e) for e in extra])
    axes = tuple(range(-nd, 0))
    crop = (slice(None), slice(None)) + tuple(slice(0, o) for o in out)
    total = _windows(xp, k, s, (1,) * nd)[crop].sum(axis=axes)
    count = _windows(inside, k, s, (1,) * nd)[crop].sum(axis=axes)
    return total / count


def adaptive_avgpool(x, size):
    oh, ow = ntuple(size, 2)
    h, w = x.shape[2:]
    y = np.empty(x.shape[:2] + (oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


def shift(x, groups):
    """MicroNet's circular group shift: channels as (groups, C/groups), rolled by one on both axes."""
    n, c = x.shape[:2]
    s = x.reshape(n, groups, c // groups, *x.shape[2:])
    return np.roll(np.roll(s, -1, axis=1), -1, axis=2).reshape(x.shape)


ACTS = {
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "hardswish": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "swish": lambda x: x / (1 + np.exp(-x)),
    "tanh": np.tanh,
}


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
    if node.op == "seq":
        for c in reversed(node.layers):
            if c.op in ("batchnorm", "seq"):
                found = _last_bn(c, f"{path}.{c.name}")
                if found:
                    return found
    return None


class Evaluator:
    """``calibrate=True``: every BatchNorm first sets its running statistics from its input on this
    batch, in graph order, then normalizes with them (``self.state`` holds the calibrated values)."""

    def __init__(self, spec: ModelSpec, state: Mapping[str, np.ndarray], calibrate: bool = False):
        check_state(spec, state)
        self.spec = spec
        self.state = {k: np.asarray(v, dtype=np.float64) for k, v in state.items()}
        self.dtypes = {k: np.asarray(v).dtype for k, v in state.items()}
        self.shapes: dict[str, tuple] = {}
        self.calibrate = calibrate
        self.damped: set[str] = set()  # BN paths whose calibrated output is scaled by 1/RESIDUAL_DAMPING

    def _stored(self, key, value):
        """Keep ``value`` rounded to the state's own dtype, so the reference output is computed
        with exactly the numbers the frameworks will load."""
        self.state[key] = np.asarray(value).astype(self.dtypes[key]).astype(np.float64)

    def _p(self, path, name):
        return self.state.get(f"{path}.{name}")

    def node(self, n, x, path):
        op = n.op
        if op == "seq":
            for c in n.layers:
                x = self.node(c, x, f"{path}.{c.name}")
            y = x
        elif op == "parallel":
            if n.split is None:
                ins = [x] * len(n.branches)
            else:
                ins = np.split(x, np.cumsum(n.split)[:-1], axis=1)
            if self.calibrate and n.merge == "add" and any(b.op == "identity" for b in n.branches):
                for b in n.branches:
                    last = _last_bn(b, f"{path}.{b.name}")
                    if last:
                        self.damped.add(last)
            outs = [self.node(b, xi, f"{path}.{b.name}") for b, xi in zip(n.branches, ins)]
            if n.merge == "concat":
                y = np.concatenate(outs, axis=1)
            else:
                y = outs[0]
                for o in outs[1:]:
                    y = y + o if n.merge == "add" else np.maximum(y, o)
        elif op == "scale":
            y = x * self.node(n.gate, x, f"{path}.{n.gate.name}")
        elif op == "shift_max":
            c = x.shape[1]
            coef = self.node(n.gate, x, f"{path}.{n.gate.name}").reshape(x.shape[0], -1, 1, 1)
            coef = (coef - 0.5) * 2.0 * n.act_max
            x2 = shift(x, n.groups)
            y = x * (coef[:, :c] + n.init_a[0]) + x2 * (coef[:, c:2 * c] + n.init_b[0])
            if n.fusions == 2:
                y = np.maximum(y, x * (coef[:, 2 * c:3 * c] + n.init_a[1]) + x2 * (coef[:, 3 * c:] + n.init_b[1]))
        else:
            y = self.leaf(n, x, path)
        self.shapes[path] = y.shape[1:]
        return y

    def leaf(self, n, x, path):
        op = n.op
        if op == "conv":
            return conv(x, self._p(path, "weight"), self._p(path, "bias"), n.stride, n.padding, n.dilation, n.groups)
        if op == "linear":
            y = x @ self._p(path, "weight").T
            b = self._p(path, "bias")
            return y if b is None else y + b
        if op == "batchnorm":
            shape = (1, -1) + (1,) * (x.ndim - 2)
            if self.calibrate:
                # half the batch mean and the second moment about it, floored at a tenth of the
                # layer's typical value: outputs stay O(1), no x - mean cancels (a BN1d over a batch
                # of 2 would subtract a mean of these very samples), and no near-constant channel
                # gets a gain of 1/sqrt(eps) that would blow float32 rounding up
                axes = (0,) + tuple(range(2, x.ndim))
                mean = 0.5 * x.mean(axis=axes)
                var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
                var = np.maximum(var, 0.1 * var.mean())
                if path in self.damped and n.affine:  # gamma and beta: damped in train mode too
                    for k in ("weight", "bias"):
                        self._stored(f"{path}.{k}", self._p(path, k) / RESIDUAL_DAMPING)
                elif path in self.damped:
                    var = var * RESIDUAL_DAMPING ** 2
                self._stored(f"{path}.running_mean", mean)
                self._stored(f"{path}.running_var", var)
            y = (x - self._p(path, "running_mean").reshape(shape)) / np.sqrt(
                self._p(path, "running_var").reshape(shape) + n.eps)
            if n.affine:
                y = y * self._p(path, "weight").reshape(shape) + self._p(path, "bias").reshape(shape)
            return y
        if op == "act":
            return ACTS[n.fn](x)
        if op == "hardsigmoid":
            return np.clip(n.slope * x + n.offset, 0, 1)
        if op == "maxpool":
            return maxpool(x, n.kernel, n.stride, n.padding, n.ceil_mode)
        if op == "avgpool":
            return avgpool(x, n.kernel, n.stride, n.padding, n.ceil_mode, n.count_include_pad)
        if op == "global_avgpool":
            return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)
        if op == "adaptive_avgpool":
            return adaptive_avgpool(x, n.output_size)
        if op == "flatten":
            return x.reshape(x.shape[0], -1)
        if op == "reshape":
            return x.reshape(x.shape[0], *n.shape)
        if op in ("dropout", "identity"):
            return x
        if op == "channel_shuffle":
            s = x.reshape(x.shape[0], n.groups, x.shape[1] // n.groups, *x.shape[2:])
            return np.swapaxes(s, 1, 2).reshape(x.shape)
        raise NotImplementedError(f"{path}: the numpy evaluator has no op {op!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, dtype=np.float64)
        for layer in self.spec.layers:
            y = self.node(layer, y, layer.name)
        return y


def calibrate(spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray):
    """``state`` with every BN's running statistics set from the statistics its input has on batch
    ``x`` (layer by layer: mean/2 and the second moment about it), and the eval-mode output of
    that calibrated state on ``x``.

    Random running statistics let activations grow layer after layer (MicroNet's reach 1e5 and
    saturate its shift-max gates, where float32 rounding flips hardsigmoid clips); calibrated
    ones keep every layer's output O(1), like a trained network's. Residual bodies beside an
    identity shortcut are damped (``RESIDUAL_DAMPING``). The statistics are rounded to the state's
    dtype before use, so the output is exactly that of the returned state.
    """
    ev = Evaluator(spec, state, calibrate=True)
    y = ev(x)
    return {k: ev.state[k].astype(ev.dtypes[k]) for k in state}, y


def forward(spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray, record_shapes: bool = False):
    """Eval-mode output (float64) of ``spec`` with canonical ``state`` on batch ``x``;
    with ``record_shapes``, also every node path's output shape."""
    ev = Evaluator(spec, state)
    y = ev(x)
    return (y, dict(ev.shapes)) if record_shapes else y
