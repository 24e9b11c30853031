"""Spec -> ``torch.nn.Module``. The only place torch conventions are applied. torch's are
the spec's own, so little is translated: 1d BN on (C,) or (C, L) inputs, a channels-first
LayerNorm by permuting around ``nn.LayerNorm``, upsampling by float scale factors, padding that
differs before and after (spec ``"same"`` at a stride) as ``F.pad`` before the unpadded conv or
pool (-inf for max pools; an average pool divided by the same pool of ones).

Fastest native form of each op, as torchvision writes it: activations run in place where their
input is a fresh tensor no one else reads (the previous sibling in a sequence made it: a conv,
BN, linear, pool, merge; never an identity, dropout or reshape, whose output may be another
node's input); hardsigmoid with torch's slope 1/6 and offset 1/2 is ``F.hardsigmoid``; a
residual's identity branch is added without calling its module (unless a hook watches it), and
the other branches are summed into a fresh branch in place (``out += identity``); an SE scale
overwrites a new input where no gradient is wanted. Freshness comes from the spec
(``tree.fresh_inputs``, ``tree.fresh_branch``).
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from ...spec import ModelSpec
from ..tree import emit, fresh_branch, fresh_inputs, ntuple


class Parallel(nn.Module):
    """Branches on the same input (or on channel chunks of it), merged by channel concat,
    sum or elementwise max."""

    def __init__(self, named, merge: str, split=None, into=None):
        super().__init__()
        for name, m in named:
            self.add_module(name, m)
        self._merge = merge
        self._split = list(split) if split else None
        self._identity = [isinstance(m, nn.Identity) for _, m in named]
        # an add's branch whose output is new: the others are summed into it in place, as
        # torchvision's ResNet does (an add's backward reads neither operand)
        self._into = into
        self.inplace = merge == "add" and into is not None

    def forward(self, x):
        if self._split is None:
            # an identity branch is x itself: no module call, unless a hook (shape recording,
            # onespec diff) must see it
            outs = [x if ident and not (m._forward_hooks or m._forward_pre_hooks) else m(x)
                    for m, ident in zip(self._modules.values(), self._identity)]
        else:
            outs = [m(xi) for m, xi in zip(self._modules.values(), torch.split(x, self._split, 1))]
        if self._merge == "concat":
            return torch.cat(outs, 1)
        if self.inplace:
            y = outs[self._into]
            for i, o in enumerate(outs):
                if i != self._into:
                    y = y.add_(o)
            return y
        y = outs[0]
        for o in outs[1:]:
            y = y + o if self._merge == "add" else torch.maximum(y, o)
        return y


class Scale(nn.Module):
    """x * gate(x) (squeeze-and-excitation)."""

    def __init__(self, name: str, gate: nn.Module):
        super().__init__()
        self.add_module(name, gate)
        self._gate_name = name
        self.inplace = False  # set by the sequence when x is a new tensor only this reads

    def forward(self, x):
        g = self._modules[self._gate_name](x)
        # in place only without autograd: the product's backward reads x
        if self.inplace and not (torch.is_grad_enabled() and (x.requires_grad or g.requires_grad)):
            return x.mul_(g)
        return x * g


class ShiftMax(nn.Module):
    """Dynamic Shift-Max: ``max_k(a_k * x + b_k * shift(x))`` with coefficients from ``gate``."""

    def __init__(self, node, gate: nn.Module, shape):
        super().__init__()
        self.add_module(node.gate.name, gate)
        self._gate_name = node.gate.name
        self._c, self._groups = shape[0], node.groups
        self._fusions, self._scale = node.fusions, 2.0 * node.act_max
        self._init_a, self._init_b = tuple(node.init_a), tuple(node.init_b)

    def shift(self, x):
        s = x.unflatten(1, (self._groups, self._c // self._groups))
        if self._groups > 1:
            s = torch.cat([s[:, 1:], s[:, :1]], 1)
        if self._c // self._groups > 1:
            s = torch.cat([s[:, :, 1:], s[:, :, :1]], 2)
        return s.flatten(1, 2)

    def forward(self, x):
        c = self._c
        y = (self._modules[self._gate_name](x).reshape(-1, 2 * self._fusions * c, 1, 1) - 0.5) * self._scale
        x2 = self.shift(x)
        out = x * (y[:, :c] + self._init_a[0]) + x2 * (y[:, c:2 * c] + self._init_b[0])
        if self._fusions == 2:
            out = torch.maximum(out, x * (y[:, 2 * c:3 * c] + self._init_a[1]) + x2 * (y[:, 3 * c:] + self._init_b[1]))
        return out


class HardSigmoid(nn.Module):
    """``clamp(slope * x + offset, 0, 1)``; torch's own kernel when the slope is torch's (1/6, 1/2)."""

    def __init__(self, slope: float, offset: float):
        super().__init__()
        self.slope, self.offset = slope, offset

    def forward(self, x):
        if abs(self.slope - 1 / 6) < 1e-12 and self.offset == 0.5:
            return nn.functional.hardsigmoid(x)
        return (x * self.slope).add_(self.offset).clamp_(0.0, 1.0)  # in place on its own temporary

    def extra_repr(self):
        return f"slope={self.slope}, offset={self.offset}"


class Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape((-1,) + self.shape)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)


class GeluTanh(nn.GELU):
    def __init__(self):
        super().__init__(approximate="tanh")


class _Axis(nn.Module):
    """An op along one sample axis (``axis`` of the spec, batch dim added)."""

    def __init__(self, n, x):
        super().__init__()
        self.dim = n.axis % len(x) + 1


class Softmax(_Axis):
    def forward(self, x):
        return torch.softmax(x, self.dim)


class L2Normalize(_Axis):
    def __init__(self, n, x):
        super().__init__(n, x)
        self.eps = n.eps

    def forward(self, x):
        return F.normalize(x, dim=self.dim, eps=self.eps)


class Slice(_Axis):
    def __init__(self, n, x):
        super().__init__(n, x)
        self.start, self.length = n.start, n.stop - n.start

    def forward(self, x):
        return x.narrow(self.dim, self.start, self.length)


class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = (0, *(d + 1 for d in dims))

    def forward(self, x):
        return x.permute(self.dims)


class Mean(nn.Module):
    def __init__(self, n, x):
        super().__init__()
        self.dims, self.keepdim = [a + 1 for a in n.resolved(x)], n.keepdim

    def forward(self, x):
        return x.mean(self.dims, keepdim=self.keepdim)


class Pad(nn.Module):
    def __init__(self, pads, value: float):
        super().__init__()
        self.pads, self.value = tuple(p for pair in reversed(pads) for p in pair), value  # F.pad: last dim first

    def forward(self, x):
        return F.pad(x, self.pads, value=self.value)


class Affine(nn.Module):
    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return x * self.scale + self.shift


class LayerScale(nn.Module):
    """``x * gamma``, gamma over the channels (dim 1) or the last dim."""

    def __init__(self, n, x):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(x[-1] if n.last_axis else x[0]))
        self._view = (-1,) if n.last_axis else (-1,) + (1,) * (len(x) - 1)

    def forward(self, x):
        return x * self.gamma.view(self._view)


class Merge(nn.Module):
    def __init__(self, n, x):
        super().__init__()
        self.mode, self.dim = n.mode, n.axis % len(x[0]) + 1

    def forward(self, *xs):
        if self.mode == "concat":
            return torch.cat(xs, self.dim)
        y = xs[0]
        for o in xs[1:]:
            y = y + o if self.mode == "add" else y * o if self.mode == "mul" else torch.maximum(y, o)
        return y


class Graph(nn.Module):
    """Children under their node names, each called on the tensors its node reads; several
    outputs are returned as a tuple."""

    def __init__(self, n, named):
        super().__init__()
        for name, m in named:
            self.add_module(name, m)
        order = n.input_names() + [name for name, _ in named]
        self._refs = [tuple(order.index(r) for r in refs) for refs in n.refs()]
        self._outs = tuple(order.index(o) for o in n.output_names())

    def forward(self, *xs):
        env = list(xs)
        for m, refs in zip(self._modules.values(), self._refs):
            env.append(m(*[env[i] for i in refs]))
        return env[self._outs[0]] if len(self._outs) == 1 else tuple(env[i] for i in self._outs)


_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish, "sigmoid": nn.Sigmoid,
         "swish": nn.SiLU, "tanh": nn.Tanh, "gelu": nn.GELU, "gelu_tanh": GeluTanh}


def _seq(n, x, kids):
    # an activation may overwrite a fresh input (the op that made it keeps no output for its
    # backward); an SE scale any new input, without autograd
    for fresh, new, (_, m) in zip(fresh_inputs(n), fresh_inputs(n, autograd=False), kids):
        if fresh and hasattr(m, "inplace") and isinstance(m, tuple(_ACTS.values())) or new and isinstance(m, Scale):
            m.inplace = True
    return nn.Sequential(OrderedDict(kids))


def _nd(shape) -> int:
    return len(shape) - 1


def _padded(base, value: float = 0.0, exclude_pad: bool = False):
    """``base`` (a conv or pool) after an explicit ``F.pad``: for padding that differs before and
    after (spec ``"same"`` at a stride), which torch's modules cannot express. An average pool that
    excludes the padding divides by the same pool of ones."""

    class Padded(base):
        def forward(self, x):
            y = super().forward(F.pad(x, self.pads, value=value))
            if exclude_pad:
                y = y / super().forward(F.pad(torch.ones_like(x[:1, :1]), self.pads))
            return y

    Padded.__name__ = base.__name__
    return Padded


_PADDED = {c: _padded(c) for c in (nn.Conv2d, nn.Conv3d)}
_PADDED.update({c: _padded(c, float("-inf")) for c in (nn.MaxPool2d, nn.MaxPool3d)})
_PADDED.update({c: _padded(c, exclude_pad=True) for c in (nn.AvgPool2d, nn.AvgPool3d)})


def _with_pads(cls, n, x, *args, **kw):
    """``cls(*args, padding, **kw)`` when ``n.pads(x)`` is symmetric, else unpadded after ``F.pad``."""
    pads = n.pads(x)
    if all(b == a for b, a in pads):
        return cls(*args, tuple(b for b, _ in pads), **kw)
    m = _PADDED[cls](*args, 0, **{k: True if k == "count_include_pad" else v for k, v in kw.items()})
    m.pads = tuple(p for pair in reversed(pads) for p in pair)  # F.pad: last dim first
    return m


def _conv(n, x):
    nd = _nd(x)
    cls = {2: nn.Conv2d, 3: nn.Conv3d}[nd]
    return _with_pads(cls, n, x, x[0], n.out_channels, ntuple(n.kernel, nd), ntuple(n.stride, nd),
                      dilation=ntuple(n.dilation, nd), groups=n.groups, bias=n.bias)


class GroupNorm(nn.GroupNorm):
    """Statistics from the NCHW layout: torch's channels-last CPU kernel takes the variance in
    one pass (E[x^2] - E[x]^2), which loses digits when the mean dwarfs the spread (mean 0.6, std
    0.014, as after saturated hardsigmoids: 6e-4 relative error against 1.5e-6 in NCHW)."""

    def forward(self, x):
        return super().forward(x.contiguous())


def _batchnorm(n, x):
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(x)]
    return cls(x[0], eps=n.eps, momentum=n.momentum, affine=n.affine)


def _pool(cls2, cls3, **extra):
    def make(n, x):
        nd = _nd(x)
        stride = n.kernel if n.stride is None else n.stride
        kw = {k: getattr(n, k) for k in extra}
        return _with_pads({2: cls2, 3: cls3}[nd], n, x, ntuple(n.kernel, nd), ntuple(stride, nd),
                          ceil_mode=n.ceil_mode, **kw)
    return make


class LayerNorm(nn.LayerNorm):
    """LayerNorm over channels at every position: (N, C, H, W) -> permute -> normalize over C."""

    def forward(self, x):
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _upsample(n, x):
    kw = {} if n.mode == "nearest" else {"align_corners": n.align_corners}
    return nn.Upsample(scale_factor=tuple(float(s) for s in ntuple(n.scale, 2)), mode=n.mode, **kw)


EMIT = {
    "conv": _conv,
    "conv_transpose": lambda n, x: nn.ConvTranspose2d(x[0], n.out_channels, ntuple(n.kernel, 2), ntuple(n.stride, 2),
                                                      ntuple(n.padding, 2), ntuple(n.output_padding, 2),
                                                      groups=n.groups, bias=n.bias, dilation=ntuple(n.dilation, 2)),
    "batchnorm": _batchnorm,
    "groupnorm": lambda n, x: GroupNorm(n.groups, x[0], eps=n.eps, affine=n.affine),
    "layernorm": lambda n, x: (nn.LayerNorm(x[-1], eps=n.eps, elementwise_affine=n.affine) if n.last_axis
                               else LayerNorm(x[0], eps=n.eps, elementwise_affine=n.affine)),
    "upsample": _upsample,
    "act": lambda n, x: _ACTS[n.fn](),
    "hardsigmoid": lambda n, x: HardSigmoid(n.slope, n.offset),
    "maxpool": _pool(nn.MaxPool2d, nn.MaxPool3d),
    "avgpool": _pool(nn.AvgPool2d, nn.AvgPool3d, count_include_pad=True),
    "global_avgpool": lambda n, x: {2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}[_nd(x)](1),
    "adaptive_avgpool": lambda n, x: nn.AdaptiveAvgPool2d(ntuple(n.output_size, 2)),
    "flatten": lambda n, x: nn.Flatten(1),
    "reshape": lambda n, x: Reshape(n.shape),
    "linear": lambda n, x: nn.Linear(x[-1], n.out_features, bias=n.bias),
    "dropout": lambda n, x: nn.Dropout(n.p),
    "identity": lambda n, x: nn.Identity(),
    "channel_shuffle": lambda n, x: ChannelShuffle(n.groups),
    "prelu": lambda n, x: nn.PReLU(1 if n.shared else x[0]),
    "hardtanh": lambda n, x: nn.Hardtanh(n.min_val, n.max_val),
    "softmax": Softmax,
    "l2norm": L2Normalize,
    "permute": lambda n, x: Permute(n.dims),
    "mean": Mean,
    "pad": lambda n, x: Pad(n.pads, n.value),
    "affine": lambda n, x: Affine(n.scale, n.shift),
    "layer_scale": LayerScale,
    "slice": Slice,
    "pixel_shuffle": lambda n, x: nn.PixelShuffle(n.factor),
    "merge": Merge,
    "graph": lambda n, x, kids: Graph(n, kids),
    "seq": _seq,
    "parallel": lambda n, x, kids: Parallel(kids, n.merge, n.split, fresh_branch(n)),
    "scale": lambda n, x, kids: Scale(*kids[0]),
    "shift_max": lambda n, x, kids: ShiftMax(n, kids[0][1], x),
}


def build(spec: ModelSpec, *, channels_last: bool | None = None, compile: bool = False) -> nn.Module:
    """The network; speed options that keep its module and parameter names (``speed_options``).
    By default (``channels_last=None``) an image network (one sample of rank 3) runs its eval
    forwards in channels-last: ``speed_options(..., channels_last="eval")``."""
    net = emit(spec, EMIT, lambda kids: nn.Sequential(OrderedDict(kids)))
    if channels_last is None:
        channels_last = "eval" if len(spec.input_shape) == 3 else False
    return speed_options(net, len(spec.input_shape), channels_last=channels_last, compile=compile)


class _ChannelsLast:
    """The channels-last pre-hook of :func:`speed_options`: every forward's input moved to
    channels-last (NDHWC for volumes), or with ``only_eval`` eval forwards only, and then the conv
    weights (the module's parameters of rank 4 or 5) too, once per switch to eval; a training
    forward moves them back to contiguous and leaves its input alone. Why the weights: with
    contiguous weights and a channels-last input oneDNN reorders every conv's weights on every
    call, which batch 1 does not hide. Moved through
    ``.data`` under the same ``Parameter`` objects (optimizers, hooks and ``state_dict()`` keep
    pointing at them; values unchanged); never while torch compiles or exports a graph. The
    format is kept by name: ``torch.save`` cannot pickle torch's memory-format objects."""

    def __init__(self, net: nn.Module, input_rank: int, only_eval: bool):
        self.fmt = "channels_last" if input_rank == 3 else "channels_last_3d"
        self.only_eval, self.moved = only_eval, False
        self.weights = [p for p in net.parameters() if p.dim() == input_rank + 1] if only_eval else []

    def _move(self, fmt) -> None:
        with torch.no_grad():
            for p in self.weights:
                # a copy, not .contiguous(): a 1x1 or one-input-channel weight already counts as
                # contiguous in either format, but oneDNN reads its layout from the strides
                p.data = torch.empty_like(p.data, memory_format=fmt).copy_(p.data)
        self.moved = fmt is not torch.contiguous_format

    def __call__(self, m, args):
        fmt = getattr(torch, self.fmt)
        if self.only_eval:
            if m.training:
                if self.moved and not torch.compiler.is_compiling():
                    self._move(torch.contiguous_format)
                return args
            if not self.moved and not torch.compiler.is_compiling():
                self._move(fmt)
        return (args[0].contiguous(memory_format=fmt), *args[1:])


def speed_options(net: nn.Module, input_rank: int, *, channels_last: bool | str = False,
                  compile: bool = False) -> nn.Module:
    """Any torch module (the benchmark gives torchvision's models the same options); ``input_rank``
    is the rank of one sample, 3 or 4.

    ``channels_last=True``: parameters and every input in torch's channels-last memory format
    (NHWC kernels; NDHWC for volumes), torch's own recipe. ``"eval"``: an eval forward moves its
    input, and the conv weights while the module stays in eval, to channels-last (``_ChannelsLast``);
    training forwards, and so gradients and optimizer state, stay NCHW with contiguous weights.
    A ``state_dict()`` taken in eval after a forward holds channels-last views of those weights
    (the same values; ``.contiguous()`` for safetensors). Why only eval: oneDNN's CPU convs
    run NHWC without NCHW's per-conv reorders (every zoo model's eval forward is faster), but
    torch's channels-last BatchNorm takes batch statistics in one pass (E[x^2] - E[x]^2: 1.8e-5 relative error at mean 0.6, std 0.014, 1.2e-6 in NCHW), and computing them
    from an NCHW copy costs more than channels-last saves. Eval BN uses running statistics.
    ``compile``: ``nn.Module.compile()`` (TorchInductor, compiled on the first call; needs a C++
    compiler on CPU)."""
    if channels_last and input_rank in (3, 4):
        if channels_last != "eval":
            net = net.to(memory_format=torch.channels_last if input_rank == 3 else torch.channels_last_3d)
        net.register_forward_pre_hook(_ChannelsLast(net, input_rank, only_eval=channels_last == "eval"))
    if compile:
        net.compile()
    return net
