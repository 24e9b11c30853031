"""The layer graph: typed primitive ops and structural combinators.

Every node has a ``name``; a node's *path* is the dot-joined names from the root, and it is
the module path of the native module each backend emits for it (so parameter names such as
``features.fire2.squeeze.weight`` are the same in torch, paddle and mindspore).

Shapes exclude the batch dimension: ``(C,)`` for features, ``(C, H, W)`` for images,
``(C, D, H, W)`` for volumes. Each node knows how to infer its output shape and count its
trainable parameters, non-trainable state (BatchNorm running statistics) and MACs
(multiply-accumulates of convolutions and linear layers, the papers' convention).

Conventions fixed here so that backends only translate them:
- BatchNorm ``momentum`` is the weight of the *new* batch statistic
  (``running = (1 - momentum) * running + momentum * batch``), torch's convention.
  Paddle and MindSpore receive ``1 - momentum``.
- Padding is explicit and symmetric per spatial dimension, never "same".
- ``hardsigmoid`` is ``clip(slope * x + offset, 0, 1)`` with slope/offset as fields.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from ..errors import SpecError

Shape = tuple[int, ...]
IntOrTuple = Union[int, tuple[int, ...]]
NAME_PATTERN = r"^[A-Za-z0-9_]+$"


def _tup(v: IntOrTuple, n: int) -> tuple[int, ...]:
    return (v,) * n if isinstance(v, int) else tuple(v)


def _prod(xs) -> int:
    return math.prod(xs)


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=NAME_PATTERN, description="module name; joined with dots into the node path")

    # -- overridden by ops -------------------------------------------------
    def infer(self, x: Shape, path: str) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def counts(self, x: Shape, y: Shape) -> tuple[int, int, int]:
        """(trainable params, non-trainable state, MACs) of this node alone."""
        return 0, 0, 0

    def children(self) -> list["Node"]:
        return []


def _fail(path: str, rule: str, msg: str):
    raise SpecError(path, rule, msg)


def _need_rank(x: Shape, ranks: tuple[int, ...], path: str, what: str) -> None:
    if len(x) not in ranks:
        want = " or ".join({1: "(C,)", 2: "(C, L)", 3: "(C, H, W)", 4: "(C, D, H, W)"}[r] for r in ranks)
        _fail(path, "rank", f"{what} needs input of shape {want}, got {x}"
              + ("; add a flatten before it" if 1 in ranks and len(x) > 1 else ""))


def _window_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    if num < 0:
        return 0
    out = (-(-num // s) if ceil_mode else num // s) + 1
    # torch/paddle/mindspore rule: the last window must start inside the (left-padded) input
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _check_window(path: str, nd: int, kernel, stride, padding, dilation=1) -> tuple:
    k, s, p, d = (_tup(v, nd) for v in (kernel, stride, padding, dilation))
    for label, v in (("kernel", k), ("stride", s), ("padding", p), ("dilation", d)):
        if len(v) != nd:
            _fail(path, "kernel", f"{label} {v} has {len(v)} entries; the input has {nd} spatial dims")
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        _fail(path, "kernel", f"kernel {k}, stride {s} and dilation {d} must be >= 1")
    if min(p) < 0:
        _fail(path, "kernel", f"padding {p} must be >= 0")
    return k, s, p, d


def _spatial(path: str, x: Shape, k, s, p, d, ceil_mode=False) -> tuple[int, ...]:
    out = tuple(_window_out(n, *a, ceil_mode) for n, *a in zip(x[1:], k, s, p, d))
    if min(out) < 1:
        _fail(path, "empty", f"input {x} is too small for kernel {k}, stride {s}, padding {p}: "
                             f"output spatial size would be {out}; use a larger input_size")
    return out


# ----------------------------------------------------------------------------- primitives
class Conv(_Node):
    """N-d convolution (2d or 3d by input rank); explicit symmetric zero padding."""
    op: Literal["conv"] = "conv"
    out_channels: int
    kernel: IntOrTuple
    stride: IntOrTuple = 1
    padding: IntOrTuple = 0
    dilation: IntOrTuple = 1
    groups: int = 1
    bias: bool = True
    in_channels: Optional[int] = Field(None, description="optional; checked against the inferred input")

    def infer(self, x, path):
        _need_rank(x, (3, 4), path, "conv")
        nd = len(x) - 1
        cin = x[0]
        if self.in_channels is not None and self.in_channels != cin:
            _fail(path, "channels", f"declares in_channels={self.in_channels} but receives {cin} channels")
        if self.out_channels < 1:
            _fail(path, "channels", f"out_channels must be >= 1, got {self.out_channels}")
        if self.groups < 1 or cin % self.groups or self.out_channels % self.groups:
            _fail(path, "groups", f"groups={self.groups} must divide in_channels={cin} "
                                  f"and out_channels={self.out_channels}")
        k, s, p, d = _check_window(path, nd, self.kernel, self.stride, self.padding, self.dilation)
        return (self.out_channels, *_spatial(path, x, k, s, p, d))

    def counts(self, x, y):
        k = _tup(self.kernel, len(x) - 1)
        per_out = (x[0] // self.groups) * _prod(k)
        params = self.out_channels * per_out + (self.out_channels if self.bias else 0)
        return params, 0, _prod(y) * per_out


class BatchNorm(_Node):
    """Batch normalization over channels (1d/2d/3d by input rank).

    ``momentum`` uses torch's convention (weight of the new batch statistic, 0.1 default).
    """
    op: Literal["batchnorm"] = "batchnorm"
    eps: float = 1e-5
    momentum: float = 0.1
    affine: bool = True

    def infer(self, x, path):
        _need_rank(x, (1, 2, 3, 4), path, "batchnorm")
        if not 0 < self.momentum < 0.5:
            _fail(path, "momentum",
                  f"momentum={self.momentum}: onespec uses torch's convention (weight of the new "
                  f"batch statistic, typically 0.1); Paddle/MindSpore momentum m is 1 - m here")
        if not self.eps > 0:
            _fail(path, "eps", f"eps must be > 0, got {self.eps}")
        return x

    def counts(self, x, y):
        return (2 * x[0] if self.affine else 0), 2 * x[0], 0


class Act(_Node):
    """Parameter-free elementwise activation. ``swish`` is x * sigmoid(x)."""
    op: Literal["act"] = "act"
    fn: Literal["relu", "relu6", "hardswish", "sigmoid", "swish", "tanh"]

    def infer(self, x, path):
        return x


class HardSigmoid(_Node):
    """``clip(slope * x + offset, 0, 1)``. torch's default is slope 1/6, offset 0.5;
    PaddleClas MobileNetV3's SE uses slope 0.2 — so it is a field, not a backend default."""
    op: Literal["hardsigmoid"] = "hardsigmoid"
    slope: float = 1.0 / 6.0
    offset: float = 0.5

    def infer(self, x, path):
        return x


class _Pool(_Node):
    kernel: IntOrTuple
    stride: Optional[IntOrTuple] = Field(None, description="defaults to kernel")
    padding: IntOrTuple = 0
    ceil_mode: bool = False

    def infer(self, x, path):
        _need_rank(x, (3, 4), path, self.op)
        nd = len(x) - 1
        k, s, p, _ = _check_window(path, nd, self.kernel, self.kernel if self.stride is None else self.stride,
                                   self.padding)
        if any(2 * pi > ki for pi, ki in zip(p, k)):
            _fail(path, "pool_padding", f"padding {p} must be at most half the kernel {k}")
        return (x[0], *_spatial(path, x, k, s, p, (1,) * nd, self.ceil_mode))


class MaxPool(_Pool):
    op: Literal["maxpool"] = "maxpool"


class AvgPool(_Pool):
    """Average pool. ``count_include_pad`` is torch's flag; Paddle's ``exclusive`` is its negation."""
    op: Literal["avgpool"] = "avgpool"
    count_include_pad: bool = True


class GlobalAvgPool(_Node):
    """Mean over all spatial dims, keeping them as size 1: (C, H, W) -> (C, 1, 1)."""
    op: Literal["global_avgpool"] = "global_avgpool"

    def infer(self, x, path):
        _need_rank(x, (3, 4), path, "global_avgpool")
        return (x[0],) + (1,) * (len(x) - 1)


class AdaptiveAvgPool(_Node):
    """Adaptive average pool to a fixed spatial ``output_size`` (torch semantics)."""
    op: Literal["adaptive_avgpool"] = "adaptive_avgpool"
    output_size: IntOrTuple

    def infer(self, x, path):
        _need_rank(x, (3,), path, "adaptive_avgpool")
        out = _tup(self.output_size, 2)
        if len(out) != 2 or min(out) < 1:
            _fail(path, "kernel", f"output_size {out} must be two positive ints")
        return (x[0], *out)


class Flatten(_Node):
    """Flatten everything but the batch dim."""
    op: Literal["flatten"] = "flatten"

    def infer(self, x, path):
        return (_prod(x),)


class Linear(_Node):
    """Fully connected layer, weight [out, in] in onespec's canonical layout."""
    op: Literal["linear"] = "linear"
    out_features: int
    bias: bool = True
    in_features: Optional[int] = Field(None, description="optional; checked against the inferred input")

    def infer(self, x, path):
        _need_rank(x, (1,), path, "linear")
        if self.in_features is not None and self.in_features != x[0]:
            _fail(path, "channels", f"declares in_features={self.in_features} but receives {x[0]} features")
        if self.out_features < 1:
            _fail(path, "channels", f"out_features must be >= 1, got {self.out_features}")
        return (self.out_features,)

    def counts(self, x, y):
        return x[0] * self.out_features + (self.out_features if self.bias else 0), 0, x[0] * self.out_features


class Dropout(_Node):
    """Inverted dropout (scales at train time, identity at inference) in every backend."""
    op: Literal["dropout"] = "dropout"
    p: float

    def infer(self, x, path):
        if not 0 <= self.p < 1:
            _fail(path, "dropout", f"drop probability p={self.p} must be in [0, 1)")
        return x


class Reshape(_Node):
    """Reshape to ``shape`` (no batch dim), row-major; e.g. HybridSN folds a 3D feature map
    (C, D, H, W) into 2D channels (C*D, H, W)."""
    op: Literal["reshape"] = "reshape"
    shape: tuple[int, ...]

    def infer(self, x, path):
        if min(self.shape) < 1 or _prod(self.shape) != _prod(x):
            _fail(path, "reshape", f"cannot reshape {x} ({_prod(x)} values) to {self.shape}")
        return tuple(self.shape)


class Identity(_Node):
    op: Literal["identity"] = "identity"

    def infer(self, x, path):
        return x


class ChannelShuffle(_Node):
    """ShuffleNet channel shuffle: (g, C/g) -> transpose -> (C/g, g)."""
    op: Literal["channel_shuffle"] = "channel_shuffle"
    groups: int

    def infer(self, x, path):
        _need_rank(x, (3, 4), path, "channel_shuffle")
        if self.groups < 1 or x[0] % self.groups:
            _fail(path, "groups", f"groups={self.groups} must divide the {x[0]} input channels")
        return x


# ---------------------------------------------------------------------------- combinators
class Sequential(_Node):
    """Children applied one after another."""
    op: Literal["seq"] = "seq"
    layers: list["Node"]

    def children(self):
        return self.layers


class Parallel(_Node):
    """Every branch sees the same input; outputs merged by channel ``concat``, ``add`` or ``max``.

    A residual connection is ``Parallel([body, Identity], merge="add")``. With ``split`` the
    input channels are cut into consecutive chunks of those sizes, one per branch
    (ShuffleNet V2's channel split).
    """
    op: Literal["parallel"] = "parallel"
    branches: list["Node"]
    merge: Literal["concat", "add", "max"]
    split: Optional[list[int]] = Field(None, description="channel chunk sizes, one per branch")

    def children(self):
        return self.branches


class Scale(_Node):
    """``x * gate(x)``; the gate's output broadcasts over x (SE: (C, 1, 1))."""
    op: Literal["scale"] = "scale"
    gate: "Node"

    def children(self):
        return [self.gate]


class ShiftMax(_Node):
    """MicroNet's Dynamic Shift-Max (Li et al., 2021, arXiv:2108.05894, Sec. 3.2).

    ``gate`` maps x (C, H, W) to 2*fusions*C coefficients in [0, 1] (global pool -> MLP ->
    hardsigmoid); they are rescaled to ``(y - 0.5) * 2 * act_max`` and offset by ``init_a`` /
    ``init_b``. With x2 the circular group shift of x (channels viewed as (groups, C/groups),
    rolled by one along both axes), the output is
    ``max_k(a_k * x + b_k * x2)`` over ``fusions`` (1 or 2) fusions.
    """
    op: Literal["shift_max"] = "shift_max"
    gate: "Node"
    groups: int
    fusions: Literal[1, 2]
    act_max: float = 2.0
    init_a: tuple[float, float] = (1.0, 1.0)
    init_b: tuple[float, float] = (0.0, 0.0)

    def children(self):
        return [self.gate]

    def counts(self, x, y):
        # the dynamic fusion itself: two multiplies (a*x, b*x2) per element and fusion
        return 0, 0, 2 * self.fusions * _prod(x)


Node = Annotated[
    Union[Conv, BatchNorm, Act, HardSigmoid, MaxPool, AvgPool, GlobalAvgPool, AdaptiveAvgPool,
          Flatten, Reshape, Linear, Dropout, Identity, ChannelShuffle, Sequential, Parallel, Scale, ShiftMax],
    Field(discriminator="op"),
]
COMBINATORS = ("seq", "parallel", "scale", "shift_max")

for _cls in (Sequential, Parallel, Scale, ShiftMax):
    _cls.model_rebuild()
