"""float64 kernels of the numpy backend, written from the op definitions (torch semantics,
documented in ``onespec.spec.nodes``), not from any framework: grouped/depthwise/3D and
transposed convolutions, ceil-mode pooling with torch's window rules, adaptive pooling,
nearest/bilinear upsampling, group/layer normalization and MicroNet's channel shift.
"""
from __future__ import annotations

import math
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import erf

from ...spec.nodes import window_out
from ..tree import ntuple


def _windows(x: np.ndarray, k, s, d) -> np.ndarray:
    """(N, C, *L) -> (N, C, *out, *k) strided/dilated windows (a view)."""
    nd = len(k)
    span = [di * (ki - 1) + 1 for ki, di in zip(k, d)]
    w = sliding_window_view(x, span, axis=tuple(range(2, 2 + nd)))
    sl = (slice(None), slice(None)) + tuple(slice(None, None, si) for si in s) + tuple(slice(None, None, di) for di in d)
    return w[sl]


def conv(x, w, b, stride, pads, dilation, groups):
    """``pads``: explicit ``(before, after)`` zero padding per spatial dim."""
    nd = x.ndim - 2
    k = w.shape[2:]
    s, d = ntuple(stride, nd), ntuple(dilation, nd)
    x = np.pad(x, [(0, 0), (0, 0)] + list(pads))
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


def _pool_geometry(x, kernel, stride, pads, ceil_mode):
    """``pads``: ``(before, after)`` per spatial dim (asymmetric only for "same", never in ceil mode)."""
    nd = x.ndim - 2
    k = ntuple(kernel, nd)
    s = ntuple(kernel if stride is None else stride, nd)
    out = [window_out(L, ki, si, b, 1, ceil_mode) if b == a else (L + b + a - ki) // si + 1
           for L, ki, si, (b, a) in zip(x.shape[2:], k, s, pads)]
    # extra right padding so the last (ceil-mode) window fits
    extra = [max(0, (o - 1) * si + ki - (L + b + a)) for o, si, ki, L, (b, a) in zip(out, s, k, x.shape[2:], pads)]
    return nd, k, s, out, extra


def maxpool(x, kernel, stride, pads, ceil_mode):
    nd, k, s, out, extra = _pool_geometry(x, kernel, stride, pads, ceil_mode)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(b, a + e) for (b, a), e in zip(pads, extra)], constant_values=-np.inf)
    win = _windows(xp, k, s, (1,) * nd)[(slice(None), slice(None)) + tuple(slice(0, o) for o in out)]
    return win.max(axis=tuple(range(-nd, 0)))


def avgpool(x, kernel, stride, pads, ceil_mode, count_include_pad):
    """torch semantics: zero padding; divisor = window elements inside the padded input
    (count_include_pad) or inside the input, never counting the ceil-mode overhang."""
    nd, k, s, out, extra = _pool_geometry(x, kernel, stride, pads, ceil_mode)
    full = [(0, 0), (0, 0)] + [(b, a + e) for (b, a), e in zip(pads, extra)]
    xp = np.pad(x, full)
    ones = np.ones((1, 1) + x.shape[2:])
    inside = np.pad(ones, full) if not count_include_pad else np.pad(
        np.pad(ones, [(0, 0), (0, 0)] + list(pads), constant_values=1.0),
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
    "gelu": lambda x: gelu(x, False),
    "gelu_tanh": lambda x: gelu(x, True),
}


def conv_transpose(x, w, b, stride, padding, output_padding, dilation, groups):
    """Transposed 2d conv as the adjoint of conv: scatter every input pixel's kernel-weighted
    copy into the (padded) output, then crop ``padding`` from both sides."""
    n, c, h, wd = x.shape
    k = w.shape[2:]
    s, p, op, d = (ntuple(v, 2) for v in (stride, padding, output_padding, dilation))
    og = w.shape[1]
    full = [(L - 1) * si + di * (ki - 1) + 1 + oi for L, si, di, ki, oi in zip((h, wd), s, d, k, op)]
    y = np.zeros((n, og * groups, full[0], full[1]))
    cg = c // groups
    for g in range(groups):
        xg = x[:, g * cg:(g + 1) * cg]
        wg = w[g * cg:(g + 1) * cg]            # (cg, og, kh, kw)
        contrib = np.einsum("nchw,cokl->noklhw", xg, wg)
        for i in range(k[0]):
            for j in range(k[1]):
                y[:, g * og:(g + 1) * og, i * d[0]:i * d[0] + (h - 1) * s[0] + 1:s[0],
                  j * d[1]:j * d[1] + (wd - 1) * s[1] + 1:s[1]] += contrib[:, :, i, j]
    y = y[:, :, p[0]:full[0] - p[0], p[1]:full[1] - p[1]]
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y


def upsample(x, scale, mode, align_corners):
    s = ntuple(scale, 2)
    h, w = x.shape[2:]
    oh, ow = h * s[0], w * s[1]
    if mode == "nearest":
        return x[:, :, (np.arange(oh) // s[0])[:, None], (np.arange(ow) // s[1])[None, :]]

    def coords(n_in, n_out, si):
        if align_corners:
            src = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        else:
            src = np.maximum((np.arange(n_out) + 0.5) / si - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    h0, h1, fh = coords(h, oh, s[0])
    w0, w1, fw = coords(w, ow, s[1])
    top = x[:, :, h0][:, :, :, w0] * (1 - fw) + x[:, :, h0][:, :, :, w1] * fw
    bot = x[:, :, h1][:, :, :, w0] * (1 - fw) + x[:, :, h1][:, :, :, w1] * fw
    return top * (1 - fh)[:, None] + bot * fh[:, None]


def groupnorm(x, groups, eps, gamma, beta):
    n, c = x.shape[:2]
    g = x.reshape(n, groups, -1)
    y = ((g - g.mean(axis=2, keepdims=True)) / np.sqrt(g.var(axis=2, keepdims=True) + eps)).reshape(x.shape)
    return _affine(y, gamma, beta)


def layernorm(x, eps, gamma, beta):
    y = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    return _affine(y, gamma, beta)


def batchnorm(x, mean, var, eps, gamma, beta):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return _affine((x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps), gamma, beta)


def _affine(y, gamma, beta):
    if gamma is None:
        return y
    shape = (1, -1) + (1,) * (y.ndim - 2)
    return y * gamma.reshape(shape) + beta.reshape(shape)


def channel_shuffle(x, groups):
    s = x.reshape(x.shape[0], groups, x.shape[1] // groups, *x.shape[2:])
    return np.swapaxes(s, 1, 2).reshape(x.shape)


def shift_max(x, coef, groups, fusions, act_max, init_a, init_b):
    c = x.shape[1]
    coef = (coef.reshape(x.shape[0], -1, *([1] * (x.ndim - 2))) - 0.5) * 2.0 * act_max
    x2 = shift(x, groups)
    y = x * (coef[:, :c] + init_a[0]) + x2 * (coef[:, c:2 * c] + init_b[0])
    if fusions == 2:
        y = np.maximum(y, x * (coef[:, 2 * c:3 * c] + init_a[1]) + x2 * (coef[:, 3 * c:] + init_b[1]))
    return y


def gelu(x, approximate: bool):
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def prelu(x, w):
    w = w.reshape((1, -1) + (1,) * (x.ndim - 2)) if w.size > 1 else w.reshape(())
    return np.maximum(x, 0) + w * np.minimum(x, 0)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def l2normalize(x, axis, eps):
    return x / np.maximum(np.sqrt((x * x).sum(axis=axis, keepdims=True)), eps)


def layernorm_last(x, eps, gamma, beta):
    y = (x - x.mean(axis=-1, keepdims=True)) / np.sqrt(x.var(axis=-1, keepdims=True) + eps)
    return y if gamma is None else y * gamma + beta


def pixel_shuffle(x, r):
    n, c, h, w = x.shape
    return x.reshape(n, c // (r * r), r, r, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // (r * r), h * r, w * r)


def merge(xs, mode, axis):
    if mode == "concat":
        return np.concatenate(xs, axis=axis)
    y = xs[0]
    for o in xs[1:]:
        y = y + o if mode == "add" else y * o if mode == "mul" else np.maximum(y, o)
    return y
