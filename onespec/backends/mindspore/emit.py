"""Spec -> ``mindspore.nn.Cell``. The only place MindSpore conventions are applied:
convs and pools get ``pad_mode='pad'`` with the spec's explicit padding (MindSpore's default
'same'/'valid' would change shapes or numbers), BN momentum is ``1 - m``, Conv ``group``/``has_bias``.
Forwards iterate fixed tuples of cells, so they compile under GRAPH_MODE."""
from __future__ import annotations

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


class Parallel(_Named):
    def __init__(self, named, merge: str):
        super().__init__(named)
        self.merge = merge

    def construct(self, x):
        outs = [cell(x) for cell in self._children_t]
        if self.merge == "concat":
            return ops.cat(outs, 1)
        y = outs[0]
        for o in outs[1:]:
            if self.merge == "add":
                y = y + o
            else:
                y = ops.maximum(y, o)
        return y


class Scale(_Named):
    def __init__(self, name, gate):
        super().__init__([(name, gate)])

    def construct(self, x):
        return x * self._children_t[0](x)


class HardSigmoid(nn.Cell):
    def __init__(self, slope: float, offset: float):
        super().__init__()
        self.slope, self.offset = slope, offset

    def construct(self, x):
        return ops.clamp(x * self.slope + self.offset, 0.0, 1.0)


class ChannelShuffle(nn.Cell):
    def __init__(self, groups: int, shape):
        super().__init__()
        c, rest = shape[0], tuple(shape[1:])
        self.split_shape = (-1, groups, c // groups) + rest
        self.merged_shape = (-1, c) + rest
        self.perm = (0, 2, 1) + tuple(range(3, 3 + len(rest)))

    def construct(self, x):
        return ops.reshape(ops.transpose(ops.reshape(x, self.split_shape), self.perm), self.merged_shape)


class GlobalAvgPool(nn.Cell):
    def __init__(self, nd: int):
        super().__init__()
        self.axes = tuple(range(2, 2 + nd))

    def construct(self, x):
        return ops.mean(x, self.axes, True)


_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.HSwish, "sigmoid": nn.Sigmoid,
         "swish": nn.SiLU, "tanh": nn.Tanh}


def _nd(shape) -> int:
    return len(shape) - 1


def _pad_sides(padding, nd: int) -> tuple[int, ...]:
    """Symmetric per-dim padding -> MindSpore's (before, after) per dim."""
    return tuple(p for p in ntuple(padding, nd) for _ in (0, 1))


def _conv(n, x):
    nd = _nd(x)
    cls = {2: nn.Conv2d, 3: nn.Conv3d}[nd]
    return cls(x[0], n.out_channels, ntuple(n.kernel, nd), stride=ntuple(n.stride, nd), pad_mode="pad",
               padding=_pad_sides(n.padding, nd), dilation=ntuple(n.dilation, nd), group=n.groups,
               has_bias=n.bias)


def _batchnorm(n, x):
    cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}[len(x)]
    return cls(x[0], eps=n.eps, momentum=1.0 - n.momentum, affine=n.affine)


def _pool(cls2, cls3, **extra):
    def make(n, x):
        nd = _nd(x)
        stride = n.kernel if n.stride is None else n.stride
        kw = {k: getattr(n, k) for k in extra}
        return {2: cls2, 3: cls3}[nd](kernel_size=ntuple(n.kernel, nd), stride=ntuple(stride, nd), pad_mode="pad",
                                      padding=ntuple(n.padding, nd), ceil_mode=n.ceil_mode, **kw)
    return make


LEAVES = {
    "conv": _conv,
    "batchnorm": _batchnorm,
    "act": lambda n, x: _ACTS[n.fn](),
    "hardsigmoid": lambda n, x: HardSigmoid(n.slope, n.offset),
    "maxpool": _pool(nn.MaxPool2d, nn.MaxPool3d),
    "avgpool": _pool(nn.AvgPool2d, nn.AvgPool3d, count_include_pad=True),
    "global_avgpool": lambda n, x: GlobalAvgPool(_nd(x)),
    "adaptive_avgpool": lambda n, x: nn.AdaptiveAvgPool2d(ntuple(n.output_size, 2)),
    "flatten": lambda n, x: nn.Flatten(),
    "linear": lambda n, x: nn.Dense(x[0], n.out_features, has_bias=n.bias),
    "dropout": lambda n, x: nn.Dropout(p=n.p),
    "identity": lambda n, x: nn.Identity(),
    "channel_shuffle": lambda n, x: ChannelShuffle(n.groups, x),
}


class _Emitters:
    LEAVES = LEAVES
    sequential = staticmethod(Sequential)
    parallel = staticmethod(Parallel)
    scale = staticmethod(Scale)


def build(spec: ModelSpec) -> nn.Cell:
    return emit(spec, _Emitters)



