"""Spec -> ``mindspore.nn.Cell``. The only place MindSpore conventions are applied:
- convs and transposed convs get ``pad_mode='pad'`` with the spec's explicit padding
  (MindSpore's default 'same'/'valid' would change shapes or numbers), convs as
  ``(top, bottom, left, right)`` from ``pads``; a transposed conv's ``output_padding`` is
  computed as torch does (``ConvTranspose2d``: MindSpore's pads zeros after the bias); pools run MindSpore's 3d pooling primitives with
  explicit padding (``Pool``: the padded ``nn`` pools do not survive a dynamic-batch MindIR export);
  ``group``/``has_bias``;
- on CPU a 2d conv (kernel > 1x1) runs as its im2col matrix product (``Im2colConv2d``:
  MindSpore's CPU conv kernel is an order of magnitude slower; a depthwise conv on a small map
  keeps it);
- on CPU a call of the network in PYNATIVE mode runs synchronously (``Network``: MindSpore's
  launch queue slows a CPU forward several times over), the caller's setting restored after it;
- BN momentum is ``1 - m``; 3d BN runs as 2d BN over folded spatial dims;
- dropout draws its masks from ``mindspore.set_seed`` at each call (``Dropout``), not from seeds
  fixed when ``nn.Dropout`` is built;
- a norm without affine parameters gets constant gamma/beta tensors: MindSpore's own
  ``affine=False`` still creates gamma/beta *parameters* (counted and checkpointed as state);
- the channels-first LayerNorm transposes around ``nn.LayerNorm`` (whose default eps is 1e-7,
  so eps is always passed); upsampling calls ``ops.interpolate`` with the explicit output size.
Forwards iterate fixed tuples of cells, so they compile under GRAPH_MODE."""
from __future__ import annotations

import contextvars

import numpy as np
import mindspore as ms
from mindspore import nn, ops

from ...spec import ModelSpec
from ..tree import emit, ntuple


class _Named(nn.Cell):
    def __init__(self, named):
        super().__init__()
        for name, cell in named:
            setattr(self, name, cell)  # setattr names parameters "<path>.weight" for checkpoints
        self._children_t = tuple(cell for _, cell in named)


class Sequential(_Named):
    def construct(self, x):
        for cell in self._children_t:
            x = cell(x)
        return x


def blocking_switch():
    """A setter for PYNATIVE's synchronous launch, or None. ``set_context(pynative_synchronize=)``
    logs a deprecation warning on every call and its successor ``runtime.launch_blocking()`` cannot
    be undone, so this goes to the context parameter that both set (MindSpore 2.10); a MindSpore
    without it gets None and the network runs in MindSpore's own mode."""
    from mindspore import context
    try:
        ctx, key = context._context(), context.ms_ctx_param.pynative_synchronize
        ctx.get_param(key)
    except AttributeError:
        return None
    return lambda on: ctx.set_param(key, on)


class Network(Sequential):
    """The root cell. With ``sync``, a call in PYNATIVE mode runs with ``pynative_synchronize`` on
    (each kernel launched by the calling thread before the next op) and the caller's setting is
    restored after it, also on an error. Why: on CPU, MindSpore 2.10's asynchronous launch queue
    slows a forward several times over, for MindCV's models as for onespec's: its queue threads
    poll for work and compete with the kernels' thread pool, on one core as on two (figures:
    docs/deploy.md, appendix A.10-A.11). GRAPH_MODE, and gradients taken after the forward, are
    left to MindSpore."""

    def __init__(self, named, sync: bool = False):
        super().__init__(named)
        self._blocking = blocking_switch() if sync else None

    def __call__(self, *args, **kwargs):
        if (self._blocking is None or ms.get_context("mode") != ms.PYNATIVE_MODE
                or ms.get_context("pynative_synchronize")):
            return super().__call__(*args, **kwargs)
        self._blocking(True)
        try:
            return super().__call__(*args, **kwargs)
        finally:
            self._blocking(False)


class Parallel(_Named):
    def __init__(self, named, merge: str, split=None):
        super().__init__(named)
        self._merge = merge
        self._split = tuple(split) if split else None

    def construct(self, x):
        if self._split is None:
            outs = [cell(x) for cell in self._children_t]
        else:
            chunks = ops.split(x, self._split, 1)
            outs = [cell(chunks[i]) for i, cell in enumerate(self._children_t)]
        if self._merge == "concat":
            return ops.cat(outs, 1)
        y = outs[0]
        for o in outs[1:]:
            if self._merge == "add":
                y = y + o
            else:
                y = ops.maximum(y, o)
        return y


class Scale(_Named):
    def __init__(self, name, gate):
        super().__init__([(name, gate)])

    def construct(self, x):
        return x * self._children_t[0](x)


class ShiftMax(_Named):
    """Dynamic Shift-Max: ``max_k(a_k * x + b_k * shift(x))`` with coefficients from ``gate``."""

    def __init__(self, node, gate, shape):
        super().__init__([(node.gate.name, gate)])
        c, hw = shape[0], tuple(shape[1:])
        self._c, self._groups, self._gc = c, node.groups, c // node.groups
        self._split_shape, self._merged_shape = (-1, node.groups, c // node.groups) + hw, (-1, c) + hw
        self._coef_shape = (-1, 2 * node.fusions * c, 1, 1)
        self._fusions, self._scale = node.fusions, 2.0 * node.act_max
        self._a0, self._a1 = float(node.init_a[0]), float(node.init_a[1])
        self._b0, self._b1 = float(node.init_b[0]), float(node.init_b[1])

    def construct(self, x):
        c = self._c
        y = (ops.reshape(self._children_t[0](x), self._coef_shape) - 0.5) * self._scale
        s = ops.reshape(x, self._split_shape)
        if self._groups > 1:
            s = ops.cat((s[:, 1:], s[:, :1]), 1)
        if self._gc > 1:
            s = ops.cat((s[:, :, 1:], s[:, :, :1]), 2)
        x2 = ops.reshape(s, self._merged_shape)
        out = x * (y[:, :c] + self._a0) + x2 * (y[:, c:2 * c] + self._b0)
        if self._fusions == 2:
            out = ops.maximum(out, x * (y[:, 2 * c:3 * c] + self._a1) + x2 * (y[:, 3 * c:] + self._b1))
        return out


class HardSigmoid(nn.Cell):
    def __init__(self, slope: float, offset: float):
        super().__init__()
        self.slope, self.offset = slope, offset

    def construct(self, x):
        return ops.clamp(x * self.slope + self.offset, 0.0, 1.0)


class Dropout(nn.Cell):
    """Inverted dropout through ``ops.dropout``, whose mask follows ``mindspore.set_seed`` at each
    call. ``nn.Dropout`` fixes its kernel's seeds when it is built, so its masks differ between
    processes and ignore a later seed: onespec's training seeds each step, and a resumed run must
    draw the masks the uninterrupted one drew."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def construct(self, x):
        return ops.dropout(x, p=self.p, training=self.training)


class ChannelShuffle(nn.Cell):
    def __init__(self, groups: int, shape):
        super().__init__()
        c, rest = shape[0], tuple(shape[1:])
        self.split_shape = (-1, groups, c // groups) + rest
        self.merged_shape = (-1, c) + rest
        self.perm = (0, 2, 1) + tuple(range(3, 3 + len(rest)))

    def construct(self, x):
        return ops.reshape(ops.transpose(ops.reshape(x, self.split_shape), self.perm), self.merged_shape)


class Reshape(nn.Cell):
    def __init__(self, shape):
        super().__init__()
        self.shape = (-1,) + tuple(shape)

    def construct(self, x):
        return ops.reshape(x, self.shape)


class BatchNorm3d(nn.BatchNorm2d):
    """3d BN as 2d BN over (N, C, D*H, W) (per-channel statistics either way). MindSpore's own
    BatchNorm3d nests a BatchNorm2d cell, which would put ``.bn2d`` into the parameter names."""

    def __init__(self, shape, **kw):
        super().__init__(shape[0], **kw)
        c, d, h, w = shape
        self.folded, self.unfolded = (-1, c, d * h, w), (-1, c, d, h, w)

    def construct(self, x):
        return ops.reshape(nn.BatchNorm2d.construct(self, ops.reshape(x, self.folded)), self.unfolded)


class GlobalAvgPool(nn.Cell):
    def __init__(self, nd: int):
        super().__init__()
        self.axes = tuple(range(2, 2 + nd))

    def construct(self, x):
        return ops.mean(x, self.axes, True)


class Gelu(nn.GELU):
    def __init__(self):
        super().__init__(approximate=False)  # MindSpore's default is the tanh approximation


class GeluTanh(nn.GELU):
    def __init__(self):
        super().__init__(approximate=True)


class PReLU(nn.Cell):
    """max(0, x) + a * min(0, x), ``a`` per channel (axis 1) or shared, named ``weight``."""

    def __init__(self, n, x):
        super().__init__()
        self.weight = ms.Parameter(ms.Tensor(np.full((1 if n.shared else x[0],), 0.25, np.float32)), name="weight")
        self._view = (1,) if n.shared else (1, -1) + (1,) * (len(x) - 1)

    def construct(self, x):
        return ops.relu(x) + self.weight.reshape(self._view) * ops.minimum(x, 0.0)


class LayerScale(nn.Cell):
    def __init__(self, n, x):
        super().__init__()
        self.gamma = ms.Parameter(ms.Tensor(np.ones((x[-1] if n.last_axis else x[0],), np.float32)), name="gamma")
        self._view = (-1,) if n.last_axis else (-1,) + (1,) * (len(x) - 1)

    def construct(self, x):
        return x * self.gamma.reshape(self._view)


class HardTanh(nn.Cell):
    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = lo, hi

    def construct(self, x):
        return ops.clamp(x, self.lo, self.hi)


class _Axis(nn.Cell):
    def __init__(self, n, x):
        super().__init__()
        self.axis = n.axis % len(x) + 1


class Softmax(_Axis):
    """Over a one-element axis the result is 1 and its gradient 0, computed without MindSpore's
    softmax: MindSpore 2.10's CPU softmax gradient over a one-element axis, when it is the
    process's first softmax gradient, leaves every later softmax gradient wrong (0.2-0.56
    relative), in this network and in any other built after it."""

    def __init__(self, n, x):
        super().__init__(n, x)
        self.single = x[n.axis % len(x)] == 1

    def construct(self, x):
        if self.single:
            return ops.ones_like(x)
        return ops.softmax(x, self.axis)


class L2Normalize(_Axis):
    def __init__(self, n, x):
        super().__init__(n, x)
        self.eps = n.eps

    def construct(self, x):
        return x / ops.clamp(ops.sqrt((x * x).sum(self.axis, keepdims=True)), min=self.eps)


class Slice(_Axis):
    def __init__(self, n, x):
        super().__init__(n, x)
        self.start, self.length = n.start, n.stop - n.start

    def construct(self, x):
        return ops.narrow(x, self.axis, self.start, self.length)


class Permute(nn.Cell):
    def __init__(self, dims):
        super().__init__()
        self.perm = (0,) + tuple(d + 1 for d in dims)

    def construct(self, x):
        return ops.transpose(x, self.perm)


class Mean(nn.Cell):
    def __init__(self, n, x):
        super().__init__()
        self.axes, self.keepdim = tuple(a + 1 for a in n.resolved(x)), n.keepdim

    def construct(self, x):
        return ops.mean(x, self.axes, self.keepdim)


class Pad(nn.Cell):
    def __init__(self, pads, value: float):
        super().__init__()
        self.pads, self.value = tuple(p for pair in reversed(pads) for p in pair), value  # last dim first

    def construct(self, x):
        return ops.pad(x, self.pads, mode="constant", value=self.value)


class Affine(nn.Cell):
    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = scale, shift

    def construct(self, x):
        return x * self.scale + self.shift


class PixelShuffle(nn.Cell):
    def __init__(self, r: int):
        super().__init__()
        self.r = r

    def construct(self, x):
        return ops.pixel_shuffle(x, self.r)


class Merge(nn.Cell):
    def __init__(self, n, x):
        super().__init__()
        self.mode, self.axis = n.mode, n.axis % len(x[0]) + 1

    def construct(self, *xs):
        if self.mode == "concat":
            return ops.cat(xs, self.axis)
        y = xs[0]
        for o in xs[1:]:
            y = y + o if self.mode == "add" else y * o if self.mode == "mul" else ops.maximum(y, o)
        return y


class Graph(_Named):
    """Children under their node names, each called on the tensors its node reads; several
    outputs are returned as a tuple."""

    def __init__(self, n, named):
        super().__init__(named)
        order = n.input_names() + [name for name, _ in named]
        self._refs = tuple(tuple(order.index(r) for r in refs) for refs in n.refs())
        self._outs = tuple(order.index(o) for o in n.output_names())

    def construct(self, *xs):
        env = list(xs)
        for cell, refs in zip(self._children_t, self._refs):
            env.append(cell(*[env[i] for i in refs]))
        if len(self._outs) == 1:
            return env[self._outs[0]]
        return tuple(env[i] for i in self._outs)


_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.HSwish, "sigmoid": nn.Sigmoid,
         "swish": nn.SiLU, "tanh": nn.Tanh, "gelu": Gelu, "gelu_tanh": GeluTanh}


def _nd(shape) -> int:
    return len(shape) - 1


class Im2colConv2d(nn.Conv2d):
    """A 2d conv computed as its im2col matrix product (``ops.unfold`` then ``ops.matmul``, one
    per group): MindSpore 2.10's CPU conv kernel is an order of magnitude slower than this on a
    k x k (k > 1) conv, while its matmul is fast (figures: docs/deploy.md). The same function, parameters
    and names as ``nn.Conv2d`` (a checkpoint loads either way); float32 results within rounding of
    the native kernel (relative 1e-6). Used on CPU only (``build(im2col=...)``).

    A depthwise conv's product is a batched (1 x k*k) @ (k*k x positions) matmul per channel:
    faster than the native kernel on large maps, slower on small ones, where many tiny matmuls cost
    more. So below ``native_below`` output positions in the whole batch (batch x height x width)
    the call goes to the native kernel."""

    def __init__(self, *args, pads, native_below: int = 0, **kw):
        super().__init__(*args, **kw)
        self._native_below = native_below
        (t, b), (l, r) = pads
        self._symmetric = t == b and l == r
        self._pad = (t, l) if self._symmetric else (0, 0)
        self._pad4 = (l, r, t, b)
        self._pad_hw = (t + b, l + r)
        self._kernel = ntuple(self.kernel_size, 2)
        self._dil = ntuple(self.dilation, 2)[-2:]
        self._str = ntuple(self.stride, 2)[-2:]

    def construct(self, x):
        n, c, h, w = x.shape
        (kh, kw), (dh, dw), (sh, sw), (ph, pw) = self._kernel, self._dil, self._str, self._pad_hw
        ho = (h + ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + pw - dw * (kw - 1) - 1) // sw + 1
        if n * ho * wo < self._native_below:
            return super().construct(x)  # nn.Conv2d pads by itself
        if not self._symmetric:
            x = ops.pad(x, self._pad4)
        g = self.group
        cols = ops.unfold(x, kernel_size=self._kernel, dilation=self._dil, padding=self._pad, stride=self._str)
        cols = cols.reshape(n, g, c // g * kh * kw, ho * wo)
        y = ops.matmul(self.weight.reshape(g, self.out_channels // g, c // g * kh * kw), cols)
        y = y.reshape(n, self.out_channels, ho, wo)
        if self.has_bias:
            y = ops.bias_add(y, self.bias)
        return y


# build(im2col=...) for the emit table's conv rule below
_IM2COL = contextvars.ContextVar("im2col", default=False)


class ConvTranspose2d(nn.Conv2dTranspose):
    """torch's transposed conv with ``output_padding``. ``nn.Conv2dTranspose`` zero-pads its
    output by ``output_padding`` after the bias, where torch computes those rows: with a padding
    they are rows the padding cropped (real values), beyond it rows no input reaches (the bias).
    So the rows the padding would crop are kept by padding less at the end (``min(padding,
    output_padding)``), the remainder is zero-padded, and the bias is added last. The same
    parameters and names as ``nn.Conv2dTranspose`` (a checkpoint loads either way)."""

    def __init__(self, n, x):
        k, s, p, d, op = (ntuple(v, 2) for v in (n.kernel, n.stride, n.padding, n.dilation, n.output_padding))
        kept = tuple(min(pi, oi) for pi, oi in zip(p, op))
        super().__init__(x[0], n.out_channels, k, stride=s, pad_mode="pad",
                         padding=(p[0], p[0] - kept[0], p[1], p[1] - kept[1]), dilation=d, group=n.groups,
                         has_bias=n.bias)
        self._hw = tuple((xi - 1) * si - 2 * pi + di * (ki - 1) + 1 + ci
                         for xi, ki, si, pi, di, ci in zip(x[1:], k, s, p, d, kept))
        zeros = tuple(oi - ci for oi, ci in zip(op, kept))
        self._zeros = ops.Pad(((0, 0), (0, 0), (0, zeros[0]), (0, zeros[1]))) if any(zeros) else None

    def construct(self, x):
        y = self.conv2d_transpose(x, self.weight, (self.shape(x)[0], self.out_channels, *self._hw))
        if self._zeros is not None:
            y = self._zeros(y)
        if self.has_bias:
            y = self.bias_add(y, self.bias)
        return y


def _conv(n, x):
    nd = _nd(x)
    pads = n.pads(x)
    k = ntuple(n.kernel, nd)
    args = (x[0], n.out_channels, k)
    kw = dict(stride=ntuple(n.stride, nd), pad_mode="pad", padding=tuple(p for pair in pads for p in pair),
              dilation=ntuple(n.dilation, nd), group=n.groups, has_bias=n.bias)
    if nd == 2 and _IM2COL.get() and k[0] * k[1] > 1:
        ho, wo = n.infer(x, n.name)[1:]
        # measured on 2 cores (Im2colConv2d's docstring): a depthwise conv's product wins from
        # 28x28 outputs at any batch, and from 3136 output positions in the batch
        small = x[0] // n.groups == 1 and ho * wo < 28 * 28
        return Im2colConv2d(*args, pads=pads, native_below=56 * 56 if small else 0, **kw)
    return {2: nn.Conv2d, 3: nn.Conv3d}[nd](*args, **kw)


def _constant_affine(cell, affine: bool, c: int):
    """Without affine parameters, gamma = 1 and beta = 0 as constants, not parameters."""
    if not affine:
        for k, v in (("gamma", 1.0), ("beta", 0.0)):
            delattr(cell, k)
            setattr(cell, k, ms.Tensor(np.full((c,), v, np.float32)))
    return cell


def _batchnorm(n, x):
    kw = {"eps": n.eps, "momentum": 1.0 - n.momentum}
    if len(x) == 4:
        cell = BatchNorm3d(x, **kw)
    else:
        cell = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d}[len(x)](x[0], **kw)
    return _constant_affine(cell, n.affine, x[0])


class LayerNorm(nn.LayerNorm):
    """LayerNorm over channels at every position (transpose to channels-last and back)."""

    def __init__(self, shape, eps):
        super().__init__((shape[0],), -1, -1, epsilon=eps)
        self.channels_first = len(shape) == 3

    def construct(self, x):
        if not self.channels_first:
            return super().construct(x)
        return ops.transpose(super().construct(ops.transpose(x, (0, 2, 3, 1))), (0, 3, 1, 2))


class Upsample(nn.Cell):
    def __init__(self, node, shape):
        super().__init__()
        s = ntuple(node.scale, 2)
        self.size = (shape[1] * s[0], shape[2] * s[1])
        self.mode, self.align_corners = node.mode, node.align_corners

    def construct(self, x):
        return ops.interpolate(x, size=self.size, mode=self.mode, align_corners=self.align_corners)


class Pool(nn.Cell):
    """Max or average pool (2d or 3d) as MindSpore's 3d pooling primitive (a 2d pool on a
    unit depth) with the spec's geometry worked out at build time, as in the numpy kernels:
    explicit (before, after) padding per dim, the ceil-mode overhang added after, then floor mode.
    ``nn.MaxPool2d``/``nn.AvgPool2d`` with ``pad_mode='pad'`` wrap their 3d primitive in ``x.ndim``
    tests, tuple outputs and squeezes; in a dynamic-batch graph (``mindspore.export`` from
    ``Tensor(shape=[None, ...])``) their output loses its rank (as does a squeeze of the 3d
    primitive's output: the input and output are reshaped here), the tests become graph branches,
    and the loaded MindIR fails (MindSpore 2.10: ``MaxPool3DWithArgmax`` "rank must be equal to 5,
    but got 6", or a ``raise`` primitive with no shape rule downstream). ``MaxPool3D`` is also the
    fastest form measured on CPU (docs/deploy.md).

    An average pool sums (``divisor_override`` = the window size) and rescales by
    ``prod(kernel) / count``, ``count`` being torch's divisor: the window's elements inside the
    padded input (``count_include_pad``) or inside the input, never the ceil-mode overhang."""

    def __init__(self, node, shape):
        super().__init__()
        nd = _nd(shape)
        k = ntuple(node.kernel, nd)
        s = ntuple(node.kernel if node.stride is None else node.stride, nd)
        out = node.infer(tuple(shape), node.name)[1:]
        pads = node.pads(tuple(shape))
        # extra padding after so that the last (ceil-mode) window fits, as numpy's _pool_geometry
        sides = [(b, a + max(0, (o - 1) * si + ki - (n + b + a)))
                 for n, o, ki, si, (b, a) in zip(shape[1:], out, k, s, pads)]
        # reshapes in and out, not expand_dims/squeeze: a dynamic batch then keeps a known rank
        self._in = (-1, shape[0], 1, *shape[1:]) if nd == 2 else None
        self._out = (-1, shape[0], *out)
        if nd == 2:
            k, s, sides = (1, *k), (1, *s), [(0, 0), *sides]
        flat = tuple(v for side in sides for v in side)
        self._rescale = None
        if node.op == "maxpool":
            self._pool = ops.MaxPool3D(kernel_size=k, strides=s, pad_mode="pad", pad_list=flat)
            return
        self._pool = ops.AvgPool3D(kernel_size=k, strides=s, pad_mode="pad", pad=flat,
                                   divisor_override=int(np.prod(k)))
        count = np.ones(out, np.float64)
        for d, (n, o, ki, si, (b, a)) in enumerate(zip(shape[1:], out, k[-nd:], s[-nd:], pads)):
            lo, hi = (0, n + b + a) if node.count_include_pad else (b, b + n)
            starts = np.arange(o) * si
            per_dim = np.minimum(starts + ki, hi) - np.maximum(starts, lo)
            count = count * per_dim.reshape([-1 if i == d else 1 for i in range(nd)])
        if not np.all(count == np.prod(k)):
            self._rescale = ms.Tensor((np.prod(k) / count)[None, None].astype(np.float32))

    def construct(self, x):
        y = ops.reshape(self._pool(x if self._in is None else ops.reshape(x, self._in)), self._out)
        if self._rescale is not None:
            y = y * self._rescale
        return y


EMIT = {
    "conv": _conv,
    "batchnorm": _batchnorm,
    "act": lambda n, x: _ACTS[n.fn](),
    "hardsigmoid": lambda n, x: HardSigmoid(n.slope, n.offset),
    "maxpool": Pool,
    "avgpool": Pool,
    "global_avgpool": lambda n, x: GlobalAvgPool(_nd(x)),
    "adaptive_avgpool": lambda n, x: nn.AdaptiveAvgPool2d(ntuple(n.output_size, 2)),
    "flatten": lambda n, x: nn.Flatten(),
    "reshape": lambda n, x: Reshape(n.shape),
    "linear": lambda n, x: nn.Dense(x[-1], n.out_features, has_bias=n.bias),
    "dropout": lambda n, x: Dropout(n.p),
    "identity": lambda n, x: nn.Identity(),
    "channel_shuffle": lambda n, x: ChannelShuffle(n.groups, x),
    "conv_transpose": ConvTranspose2d,
    "groupnorm": lambda n, x: _constant_affine(nn.GroupNorm(n.groups, x[0], eps=n.eps), n.affine, x[0]),
    "layernorm": lambda n, x: _constant_affine(LayerNorm((x[-1],) if n.last_axis else x, n.eps), n.affine,
                                               x[-1] if n.last_axis else x[0]),
    "upsample": lambda n, x: Upsample(n, x),
    "prelu": PReLU,
    "hardtanh": lambda n, x: HardTanh(n.min_val, n.max_val),
    "softmax": Softmax,
    "l2norm": L2Normalize,
    "permute": lambda n, x: Permute(n.dims),
    "mean": Mean,
    "pad": lambda n, x: Pad(n.pads, n.value),
    "affine": lambda n, x: Affine(n.scale, n.shift),
    "layer_scale": LayerScale,
    "slice": Slice,
    "pixel_shuffle": lambda n, x: PixelShuffle(n.factor),
    "merge": Merge,
    "graph": lambda n, x, kids: Graph(n, kids),
    "seq": lambda n, x, kids: Sequential(kids),
    "parallel": lambda n, x, kids: Parallel(kids, n.merge, n.split),
    "scale": lambda n, x, kids: Scale(*kids[0]),
    "shift_max": lambda n, x, kids: ShiftMax(n, kids[0][1], x),
}


def build(spec: ModelSpec, *, im2col: bool | None = None, sync: bool | None = None) -> nn.Cell:
    """The network. ``im2col``: 2d convs as their im2col matrix product (``Im2colConv2d``);
    ``sync``: PYNATIVE calls of the network run synchronously (``Network``); each by default on
    when MindSpore's device target is CPU, where its conv kernel and its launch queue are slow."""
    cpu = ms.get_context("device_target") == "CPU"
    im2col = cpu if im2col is None else im2col
    sync = cpu if sync is None else sync
    token = _IM2COL.set(im2col)
    try:
        return emit(spec, EMIT, lambda named: Network(named, sync))
    finally:
        _IM2COL.reset(token)
