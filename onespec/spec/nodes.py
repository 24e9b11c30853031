"""The layer graph: typed primitive ops and structural combinators, one class each.

Every node has a ``name``; a node's *path* is the dot-joined names from the root, and it is
the module path of the native module each backend emits for it (so parameter names such as
``features.fire2.squeeze.weight`` are the same in torch, paddle and mindspore).

Shapes exclude the batch dimension: ``(C,)`` for features, ``(C, H, W)`` for images,
``(C, D, H, W)`` for volumes. Each class owns, once:
- its shape rule (``infer``; combinators ``walk`` their ``children()`` through the one generic walk);
- its tensors (``tensors(in_shape)``: canonical name, shape, role, trainable or state), from which
  parameter counts, the canonical layout, ``init_state`` and every backend's name translation derive;
- its MACs (multiply-accumulates of convolutions and linear layers, the papers' convention).

Conventions fixed here so that backends only translate them:
- BatchNorm ``momentum`` is the weight of the *new* batch statistic
  (``running = (1 - momentum) * running + momentum * batch``), torch's convention.
  Paddle and MindSpore receive ``1 - momentum``.
- Padding is explicit and symmetric per spatial dimension, or ``"same"`` on convolutions and
  pools: TensorFlow's and MindSpore's ``pad_mode="same"`` (output ``ceil(n / stride)``, the odd
  pixel of padding at the end: bottom/right). ``pads(x)`` resolves either to explicit
  ``(before, after)`` pairs for input ``x``; backends only ever see those.
- ``hardsigmoid`` is ``clip(slope * x + offset, 0, 1)`` with slope/offset as fields.
- ``upsample`` has an integer scale and an explicit ``align_corners`` for bilinear.
- ``conv_transpose`` has an explicit ``output_padding``; its weight is [in, out/groups, *kernel].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Callable, Literal, Optional, Union, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from ..errors import SpecError
from .reserved import PRIVATE_NAMES, RESERVED_NAMES

Shape = tuple[int, ...]
Int = StrictInt  # no bools, no floats, no strings where a count is meant
IntOrTuple = Union[StrictInt, tuple[StrictInt, ...]]
Padding = Union[StrictInt, tuple[StrictInt, ...], Literal["same"]]
# a letter (or "_" and a letter) then letters, digits, "_" or "-" (RegNet's ``block1-0``: torch, paddle
# and mindspore all register such children and name their parameters with it), or a digit then
# digits, letters, "_" or "-" (a number; PaddleClas ShuffleNetV2's ``2_1``)
NAME_PATTERN = r"^_?[A-Za-z][A-Za-z0-9_-]*$|^[0-9][A-Za-z0-9_-]*$"


def _tup(v: IntOrTuple, n: int) -> tuple[int, ...]:
    return (v,) * n if isinstance(v, int) else tuple(v)


def _prod(xs) -> int:
    return math.prod(xs)


@dataclass(frozen=True)
class Tensor:
    """One tensor a node owns. ``name`` is the canonical suffix (``<path>.<name>``); ``role``
    tells backends how to name it (``gamma``/``beta``/``running_*``) and how to initialise it."""
    name: str
    shape: tuple[int, ...]
    role: str        # weight | bias | gamma | beta | running_mean | running_var
    trainable: bool = True


Visit = Callable[["_Node", Shape], Shape]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    name: str = Field(pattern=NAME_PATTERN, max_length=64,
                      description="module name; joined with dots into the node path")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        # rule "reserved": a child registered under a framework attribute's name (forward,
        # training, cells, construct, split, ...) shadows it or is dropped by that framework
        if v in RESERVED_NAMES or v in PRIVATE_NAMES:
            raise ValueError(f"[reserved] node name {v!r} is an attribute of torch/paddle/mindspore modules "
                             f"or of onespec's emitted modules; rename it")
        return v

    # -- overridden by ops -------------------------------------------------
    def infer(self, x: Shape, path: str) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def walk(self, x: Shape, path: str, visit: Visit) -> Shape:
        """Output shape; combinators call ``visit(child, child_input)`` for each child."""
        return self.infer(x, path)

    def tensors(self, x: Shape) -> tuple[Tensor, ...]:
        """The tensors this node owns for input shape ``x`` (canonical layout)."""
        return ()

    def macs(self, x: Shape, y: Shape) -> int:
        return 0

    def children(self) -> list["Node"]:
        return []

    @property
    def is_leaf(self) -> bool:
        return not isinstance(self, _Combinator)

    def counts(self, x: Shape, y: Shape) -> tuple[int, int, int]:
        """(trainable params, non-trainable state, MACs) of this node alone, from ``tensors``."""
        ts = self.tensors(x)
        return (sum(_prod(t.shape) for t in ts if t.trainable),
                sum(_prod(t.shape) for t in ts if not t.trainable), self.macs(x, y))


def _fail(path: str, rule: str, msg: str):
    raise SpecError(path, rule, msg)


def _need_rank(x: Shape, ranks: tuple[int, ...], path: str, what: str) -> None:
    if len(x) not in ranks:
        want = " or ".join({1: "(C,)", 2: "(C, L)", 3: "(C, H, W)", 4: "(C, D, H, W)"}[r] for r in ranks)
        _fail(path, "rank", f"{what} needs input of shape {want}, got {x}"
              + ("; add a flatten before it" if 1 in ranks and len(x) > 1 else ""))


def window_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """Output length of a window of kernel ``k``, stride ``s``, padding ``p`` and dilation ``d``
    over ``size`` (0 when it does not fit), rounding up with ``ceil_mode`` as PyTorch does."""
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    if num < 0:
        return 0
    out = (-(-num // s) if ceil_mode else num // s) + 1
    # torch/mindspore rule: the last window must start inside the (left-padded) input
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def window_pads(x: Shape, kernel, stride, padding, dilation=1) -> tuple[tuple[int, int], ...]:
    """Explicit ``(before, after)`` zero padding per spatial dim of input ``x``. ``"same"`` is
    TensorFlow's rule (MindSpore's ``pad_mode="same"``, measured equal): total padding
    ``max((ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)``, the smaller half before."""
    nd = len(x) - 1
    k, s, d = (_tup(v, nd) for v in (kernel, stride, dilation))
    if padding != "same":
        return tuple((p, p) for p in _tup(padding, nd))
    out = []
    for n, ki, si, di in zip(x[1:], k, s, d):
        total = max((-(-n // si) - 1) * si + di * (ki - 1) + 1 - n, 0)
        out.append((total // 2, total - total // 2))
    return tuple(out)


def _check_window(path: str, nd: int, kernel, stride, padding, dilation=1) -> tuple:
    if padding == "same":
        padding = 0  # checked as unpadded; its output size is ceil(n / stride)
    k, s, p, d = (_tup(v, nd) for v in (kernel, stride, padding, dilation))
    for label, v in (("kernel", k), ("stride", s), ("padding", p), ("dilation", d)):
        if len(v) != nd:
            _fail(path, "kernel", f"{label} {v} has {len(v)} entries; the input has {nd} spatial dims")
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        _fail(path, "kernel", f"kernel {k}, stride {s} and dilation {d} must be >= 1")
    if min(p) < 0:
        _fail(path, "kernel", f"padding {p} must be >= 0")
    return k, s, p, d


def _spatial(path: str, x: Shape, k, s, p, d, ceil_mode=False, same=False) -> tuple[int, ...]:
    out = (tuple(-(-n // si) for n, si in zip(x[1:], s)) if same
           else tuple(window_out(n, *a, ceil_mode) for n, *a in zip(x[1:], k, s, p, d)))
    if min(out) < 1:
        _fail(path, "empty", f"input {x} is too small for kernel {k}, stride {s}, padding {p}: "
                             f"output spatial size would be {out}; use a larger input_size")
    return out


def _positive(path: str, what: str, v: int) -> None:
    if v < 1:
        _fail(path, "channels", f"{what} must be >= 1, got {v}")


# ----------------------------------------------------------------------------- primitives
class _ConvFields(_Node):
    out_channels: Int
    kernel: IntOrTuple
    stride: IntOrTuple = 1
    padding: IntOrTuple = 0
    dilation: IntOrTuple = 1
    groups: Int = 1
    bias: StrictBool = True

    def _bias(self, w: Tensor) -> tuple[Tensor, ...]:
        return (w, Tensor("bias", (self.out_channels,), "bias")) if self.bias else (w,)


class Conv(_ConvFields):
    """N-d convolution (2d or 3d by input rank); explicit symmetric zero padding or ``"same"``."""
    op: Literal["conv"] = "conv"
    padding: Padding = 0
    in_channels: Optional[Int] = Field(None, description="optional; checked against the inferred input")

    def infer(self, x, path):
        _need_rank(x, (3, 4), path, "conv")
        nd = len(x) - 1
        cin = x[0]
        if self.in_channels is not None and self.in_channels != cin:
            _fail(path, "channels", f"declares in_channels={self.in_channels} but receives {cin} channels")
        _positive(path, "out_channels", self.out_channels)
        if self.groups < 1 or cin % self.groups or self.out_channels % self.groups:
            _fail(path, "groups", f"groups={self.groups} must divide in_channels={cin} "
                                  f"and out_channels={self.out_channels}")
        k, s, p, d = _check_window(path, nd, self.kernel, self.stride, self.padding, self.dilation)
        return (self.out_channels, *_spatial(path, x, k, s, p, d, same=self.padding == "same"))

    def pads(self, x: Shape) -> tuple[tuple[int, int], ...]:
        return window_pads(x, self.kernel, self.stride, self.padding, self.dilation)

    def tensors(self, x):
        k = _tup(self.kernel, len(x) - 1)
        return self._bias(Tensor("weight", (self.out_channels, x[0] // self.groups, *k), "weight"))

    def macs(self, x, y):
        return _prod(y) * (x[0] // self.groups) * _prod(_tup(self.kernel, len(x) - 1))


class ConvTranspose(_ConvFields):
    """2d transposed convolution (the gradient of a conv), torch semantics:
    ``out = (in - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1``.
    ``output_padding`` is explicit (no framework's "same" inference); weight [in, out/groups, kH, kW]."""
    op: Literal["conv_transpose"] = "conv_transpose"
    output_padding: IntOrTuple = 0

    def infer(self, x, path):
        _need_rank(x, (3,), path, "conv_transpose")
        _positive(path, "out_channels", self.out_channels)
        if self.groups < 1 or x[0] % self.groups or self.out_channels % self.groups:
            _fail(path, "groups", f"groups={self.groups} must divide in_channels={x[0]} "
                                  f"and out_channels={self.out_channels}")
        k, s, p, d = _check_window(path, 2, self.kernel, self.stride, self.padding, self.dilation)
        op = _tup(self.output_padding, 2)
        if len(op) != 2 or any(not 0 <= o < max(si, di) for o, si, di in zip(op, s, d)):
            _fail(path, "kernel", f"output_padding {op} must be >= 0 and smaller than stride {s} or dilation {d}")
        if any(pi > di * (ki - 1) for pi, ki, di in zip(p, k, d)):
            _fail(path, "kernel", f"padding {p} must be at most dilation * (kernel - 1) = "
                                  f"{tuple(di * (ki - 1) for ki, di in zip(k, d))}")
        out = tuple((n - 1) * si - 2 * pi + di * (ki - 1) + oi + 1
                    for n, ki, si, pi, di, oi in zip(x[1:], k, s, p, d, op))
        if min(out) < 1:
            _fail(path, "empty", f"output spatial size would be {out}")
        return (self.out_channels, *out)

    def tensors(self, x):
        return self._bias(Tensor("weight", (x[0], self.out_channels // self.groups, *_tup(self.kernel, 2)), "weight"))

    def macs(self, x, y):
        return _prod(x) * (self.out_channels // self.groups) * _prod(_tup(self.kernel, 2))


def _norm_tensors(c: int, affine: bool, running: bool) -> tuple[Tensor, ...]:
    out = (Tensor("weight", (c,), "gamma"), Tensor("bias", (c,), "beta")) if affine else ()
    if running:
        out += (Tensor("running_mean", (c,), "running_mean", False), Tensor("running_var", (c,), "running_var", False))
    return out


def _check_eps(path: str, eps: float) -> None:
    if not 0 < eps < 1:
        _fail(path, "eps", f"eps must be in (0, 1), got {eps}")


class BatchNorm(_Node):
    """Batch normalization over channels (1d/2d/3d by input rank).

    ``momentum`` uses torch's convention (weight of the new batch statistic, 0.1 default).
    """
    op: Literal["batchnorm"] = "batchnorm"
    eps: float = 1e-5
    momentum: float = 0.1
    affine: StrictBool = True

    def infer(self, x, path):
        _need_rank(x, (1, 2, 3, 4), path, "batchnorm")
        if not 0 < self.momentum < 0.5:
            _fail(path, "momentum",
                  f"momentum={self.momentum}: onespec uses torch's convention (weight of the new "
                  f"batch statistic, typically 0.1); Paddle/MindSpore momentum m is 1 - m here")
        _check_eps(path, self.eps)
        return x

    def tensors(self, x):
        return _norm_tensors(x[0], self.affine, True)


class GroupNorm(_Node):
    """Group normalization (Wu & He, 2018): statistics per sample over each group of
    ``C / groups`` channels and all positions; per-channel affine."""
    op: Literal["groupnorm"] = "groupnorm"
    groups: Int
    eps: float = 1e-5
    affine: StrictBool = True

    def infer(self, x, path):
        _need_rank(x, (3,), path, "groupnorm")
        if self.groups < 1 or x[0] % self.groups:
            _fail(path, "groups", f"groups={self.groups} must divide the {x[0]} channels")
        _check_eps(path, self.eps)
        return x

    def tensors(self, x):
        return _norm_tensors(x[0], self.affine, False)


class LayerNorm(_Node):
    """Layer normalization over the channel dimension at every position (ConvNeXt's
    "channels first" LayerNorm); on (C,) features, over the features. With ``last_axis`` over the
    last dimension of any input (``nn.LayerNorm(d)`` on tokens or after a permute)."""
    op: Literal["layernorm"] = "layernorm"
    eps: float = 1e-5
    affine: StrictBool = True
    last_axis: StrictBool = False

    def infer(self, x, path):
        _need_rank(x, (1, 2, 3, 4) if self.last_axis else (1, 3), path, "layernorm")
        _check_eps(path, self.eps)
        return x

    def tensors(self, x):
        return _norm_tensors(x[-1] if self.last_axis else x[0], self.affine, False)


class Act(_Node):
    """Parameter-free elementwise activation. ``swish`` is x * sigmoid(x); ``gelu`` is the exact
    x * Phi(x) (Hendrycks & Gimpel, 2016), ``gelu_tanh`` its tanh approximation."""
    op: Literal["act"] = "act"
    fn: Literal["relu", "relu6", "hardswish", "sigmoid", "swish", "tanh", "gelu", "gelu_tanh"]

    def infer(self, x, path):
        return x


class HardSigmoid(_Node):
    """``clip(slope * x + offset, 0, 1)``. torch's default is slope 1/6, offset 0.5;
    PaddleClas MobileNetV3's SE uses slope 0.2 — so it is a field, not a backend default."""
    op: Literal["hardsigmoid"] = "hardsigmoid"
    slope: float = 1.0 / 6.0
    offset: float = 0.5

    def infer(self, x, path):
        if not (self.slope != 0 and abs(self.slope) < 1e6 and abs(self.offset) < 1e6):
            _fail(path, "hardsigmoid", f"slope {self.slope} must be non-zero and |slope|, |offset| < 1e6")
        return x


class _Pool(_Node):
    kernel: IntOrTuple
    stride: Optional[IntOrTuple] = Field(None, description="defaults to kernel")
    padding: Padding = 0
    ceil_mode: StrictBool = False

    def infer(self, x, path):
        _need_rank(x, (3, 4), path, self.op)
        nd = len(x) - 1
        k, s, p, _ = _check_window(path, nd, self.kernel, self.kernel if self.stride is None else self.stride,
                                   self.padding)
        if self.padding == "same" and self.ceil_mode:
            _fail(path, "ceil_mode", "padding 'same' fixes the output size at ceil(n / stride); ceil_mode must be false")
        if any(2 * pi > ki for pi, ki in zip(p, k)):
            _fail(path, "pool_padding", f"padding {p} must be at most half the kernel {k}")
        out = _spatial(path, x, k, s, p, (1,) * nd, self.ceil_mode, same=self.padding == "same")
        if self.ceil_mode:
            # A ceil-mode pool whose extra window would start in the right padding is dropped by torch
            # and mindspore but kept by paddle; backends then pool in floor mode, which gives exactly
            # torch's windows. Only a mix (one dim gains a window, another's is dropped) has no
            # single-flag translation.
            naive = tuple(-(-(n + 2 * pi - ki) // si) + 1 for n, ki, si, pi in zip(x[1:], k, s, p))
            dropped = [o != nv for o, nv in zip(out, naive)]
            if any(dropped) and any(self._gains(x)):
                _fail(path, "ceil_mode", f"ceil_mode on input {x}: one dim's last window starts in the padding "
                                         f"(dropped by torch/mindspore, kept by paddle) while another gains one; "
                                         f"frameworks cannot agree, change padding or ceil_mode")
        return (x[0], *out)

    def pads(self, x: Shape) -> tuple[tuple[int, int], ...]:
        return window_pads(x, self.kernel, self.kernel if self.stride is None else self.stride, self.padding)

    def _gains(self, x: Shape) -> list[bool]:
        """Per spatial dim of input ``x``: whether torch's ceil-mode rule gives one more window
        than floor mode."""
        nd = len(x) - 1
        k, s, p = (_tup(v, nd) for v in (self.kernel, self.kernel if self.stride is None else self.stride,
                                          self.padding))
        return [window_out(n, ki, si, pi, 1, True) != window_out(n, ki, si, pi, 1, False)
                for n, ki, si, pi in zip(x[1:], k, s, p)]

    def effective_ceil(self, x: Shape) -> bool:
        """Whether ceil mode changes the output for input ``x`` (a pool whose ceil-mode extra
        window is dropped by torch's rule equals its floor-mode pool)."""
        return self.ceil_mode and any(self._gains(x))


class MaxPool(_Pool):
    op: Literal["maxpool"] = "maxpool"


class AvgPool(_Pool):
    """Average pool. ``count_include_pad`` is torch's flag; Paddle's ``exclusive`` is its negation.
    With ``"same"`` padding it must be false, as in TensorFlow and MindSpore (measured: MindSpore's
    ``AvgPool2d(pad_mode="same")`` divides by the window's input pixels)."""
    op: Literal["avgpool"] = "avgpool"
    count_include_pad: StrictBool = True

    def infer(self, x, path):
        if self.padding == "same" and self.count_include_pad:
            _fail(path, "pool_padding", "padding 'same' averages over the window's input pixels only "
                                        "(TensorFlow, MindSpore); set count_include_pad to false")
        return super().infer(x, path)


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


class Upsample(_Node):
    """Spatial upsampling of (C, H, W) by integer ``scale`` factors. ``nearest`` copies
    ``src = floor(dst / scale)``; ``bilinear`` maps ``src = (dst + 0.5) / scale - 0.5`` (half-pixel,
    ``align_corners=False``) or ``dst * (in - 1) / (out - 1)`` (``align_corners=True``), a field
    because frameworks default differently."""
    op: Literal["upsample"] = "upsample"
    scale: IntOrTuple = 2
    mode: Literal["nearest", "bilinear"] = "nearest"
    align_corners: Optional[StrictBool] = Field(None, description="bilinear only: required there")

    def infer(self, x, path):
        _need_rank(x, (3,), path, "upsample")
        s = _tup(self.scale, 2)
        if len(s) != 2 or not all(1 <= si <= 64 for si in s):
            _fail(path, "kernel", f"scale {s} must be two ints in [1, 64]")
        if (self.mode == "bilinear") != (self.align_corners is not None):
            _fail(path, "align_corners", "bilinear needs an explicit align_corners (true/false); "
                                         "nearest takes none")
        return (x[0], x[1] * s[0], x[2] * s[1])


class Flatten(_Node):
    """Flatten everything but the batch dim."""
    op: Literal["flatten"] = "flatten"

    def infer(self, x, path):
        return (_prod(x),)


class Linear(_Node):
    """Fully connected layer, weight [out, in] in onespec's canonical layout. On (C,) features;
    with ``last_axis`` on the last dimension of any input (every other position alike)."""
    op: Literal["linear"] = "linear"
    out_features: Int
    bias: StrictBool = True
    in_features: Optional[Int] = Field(None, description="optional; checked against the inferred input")
    last_axis: StrictBool = False

    def infer(self, x, path):
        _need_rank(x, (1, 2, 3, 4) if self.last_axis else (1,), path, "linear")
        if self.in_features is not None and self.in_features != x[-1]:
            _fail(path, "channels", f"declares in_features={self.in_features} but receives {x[-1]} features")
        _positive(path, "out_features", self.out_features)
        return (*x[:-1], self.out_features)

    def tensors(self, x):
        w = Tensor("weight", (self.out_features, x[-1]), "weight")
        return (w, Tensor("bias", (self.out_features,), "bias")) if self.bias else (w,)

    def macs(self, x, y):
        return _prod(x) * self.out_features


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
    shape: tuple[Int, ...]

    def infer(self, x, path):
        if not 1 <= len(self.shape) <= 4 or min(self.shape) < 1 or _prod(self.shape) != _prod(x):
            _fail(path, "reshape", f"cannot reshape {x} ({_prod(x)} values) to {self.shape} (1 to 4 positive dims)")
        return tuple(self.shape)


class Identity(_Node):
    op: Literal["identity"] = "identity"

    def infer(self, x, path):
        return x


class ChannelShuffle(_Node):
    """ShuffleNet channel shuffle: (g, C/g) -> transpose -> (C/g, g)."""
    op: Literal["channel_shuffle"] = "channel_shuffle"
    groups: Int

    def infer(self, x, path):
        _need_rank(x, (3, 4), path, "channel_shuffle")
        if self.groups < 1 or x[0] % self.groups:
            _fail(path, "groups", f"groups={self.groups} must divide the {x[0]} input channels")
        return x


def _axis(x: Shape, axis: int, path: str, what: str) -> int:
    """``axis`` of a sample (0: channels; negative from the end) as a non-negative index."""
    if not -len(x) <= axis < len(x):
        _fail(path, "axis", f"{what} axis {axis} is outside the input {x} (sample dims, no batch)")
    return axis % len(x)


class PReLU(_Node):
    """``max(0, x) + a * min(0, x)`` with a learned slope ``a`` per channel (dim 0 of a sample)
    or one ``shared`` slope (He et al., 2015)."""
    op: Literal["prelu"] = "prelu"
    shared: StrictBool = False

    def infer(self, x, path):
        return x

    def tensors(self, x):
        return (Tensor("weight", (1 if self.shared else x[0],), "slope"),)


class HardTanh(_Node):
    """``clip(x, min_val, max_val)``; relu6 is (0, 6)."""
    op: Literal["hardtanh"] = "hardtanh"
    min_val: float = -1.0
    max_val: float = 1.0

    def infer(self, x, path):
        if not (self.min_val < self.max_val and max(abs(self.min_val), abs(self.max_val)) < 1e6):
            _fail(path, "hardtanh", f"min_val {self.min_val} must be below max_val {self.max_val}, both within 1e6")
        return x


class Softmax(_Node):
    """Softmax along one ``axis`` of a sample (0: channels)."""
    op: Literal["softmax"] = "softmax"
    axis: Int = 0

    def infer(self, x, path):
        _axis(x, self.axis, path, "softmax")
        return x


class L2Normalize(_Node):
    """``x / max(||x||_2, eps)`` along ``axis`` of a sample (torch's ``F.normalize``)."""
    op: Literal["l2norm"] = "l2norm"
    axis: Int = 0
    eps: float = 1e-12

    def infer(self, x, path):
        _axis(x, self.axis, path, "l2norm")
        if not 0 < self.eps < 1:
            _fail(path, "eps", f"eps must be in (0, 1), got {self.eps}")
        return x


class Permute(_Node):
    """Reorder the dims of a sample: output dim i is input dim ``dims[i]`` (no batch dim;
    (C, H, W) -> (H, W, C) is ``dims=(1, 2, 0)``)."""
    op: Literal["permute"] = "permute"
    dims: tuple[Int, ...]

    def infer(self, x, path):
        if sorted(self.dims) != list(range(len(x))):
            _fail(path, "permute", f"dims {self.dims} must order the {len(x)} dims of the input {x}")
        return tuple(x[d] for d in self.dims)


class Mean(_Node):
    """Mean over ``axes`` of a sample, kept as size 1 with ``keepdim``."""
    op: Literal["mean"] = "mean"
    axes: tuple[Int, ...]
    keepdim: StrictBool = False

    def infer(self, x, path):
        axes = sorted({_axis(x, a, path, "mean") for a in self.axes})
        if not axes or len(axes) != len(self.axes) or (not self.keepdim and len(axes) == len(x)):
            _fail(path, "axis", f"mean axes {self.axes} must be distinct and leave a dim of {x} (or keepdim)")
        return tuple(1 if i in axes else n for i, n in enumerate(x) if self.keepdim or i not in axes)

    def resolved(self, x: Shape) -> tuple[int, ...]:
        return tuple(sorted(a % len(x) for a in self.axes))


class Pad(_Node):
    """Constant padding of the spatial dims: ``pads`` holds one ``(before, after)`` pair per
    spatial dim, in order (H then W)."""
    op: Literal["pad"] = "pad"
    pads: tuple[tuple[Int, Int], ...]
    value: float = 0.0

    def infer(self, x, path):
        _need_rank(x, (2, 3, 4), path, "pad")
        if len(self.pads) != len(x) - 1 or min(min(p) for p in self.pads) < 0 or max(max(p) for p in self.pads) > 4096:
            _fail(path, "pad", f"pads {self.pads} must give one (before, after) pair in [0, 4096] "
                               f"per spatial dim of {x}")
        return (x[0], *(n + b + a for n, (b, a) in zip(x[1:], self.pads)))


class Affine(_Node):
    """Constant ``x * scale + shift`` (input normalization inside a model, ``(x - 0.5) / 0.5``)."""
    op: Literal["affine"] = "affine"
    scale: float = 1.0
    shift: float = 0.0

    def infer(self, x, path):
        if not (abs(self.scale) < 1e6 and abs(self.shift) < 1e6):
            _fail(path, "affine", f"scale {self.scale} and shift {self.shift} must be within 1e6")
        return x


class LayerScale(_Node):
    """Per-channel trainable scale ``x * gamma`` (CaiT's LayerScale, ConvNeXt's ``gamma``);
    ``gamma`` broadcasts over dim 0 (channels) or, with ``last_axis``, over the last dim."""
    op: Literal["layer_scale"] = "layer_scale"
    last_axis: StrictBool = False

    def infer(self, x, path):
        return x

    def tensors(self, x):
        return (Tensor("gamma", (x[-1] if self.last_axis else x[0],), "gamma"),)


class Slice(_Node):
    """Dims ``start:stop`` of ``axis`` of a sample (0: a channel slice)."""
    op: Literal["slice"] = "slice"
    axis: Int = 0
    start: Int
    stop: Int

    def infer(self, x, path):
        a = _axis(x, self.axis, path, "slice")
        if not 0 <= self.start < self.stop <= x[a]:
            _fail(path, "slice", f"slice {self.start}:{self.stop} must be a non-empty part of the {x[a]} of axis {a}")
        return (*x[:a], self.stop - self.start, *x[a + 1:])


class PixelShuffle(_Node):
    """(C * r^2, H, W) -> (C, H * r, W * r), torch's channel order (Shi et al., 2016)."""
    op: Literal["pixel_shuffle"] = "pixel_shuffle"
    factor: Int

    def infer(self, x, path):
        _need_rank(x, (3,), path, "pixel_shuffle")
        r = self.factor
        if r < 1 or x[0] % (r * r):
            _fail(path, "groups", f"factor {r}: its square must divide the {x[0]} input channels")
        return (x[0] // (r * r), x[1] * r, x[2] * r)


class Merge(_Node):
    """Several tensors of a :class:`Graph` into one: ``concat`` along ``axis`` (0: channels),
    elementwise ``add``, ``mul`` or ``max`` (same rank; a dim of 1 broadcasts, as a gate of (C, 1, 1) over
    (C, H, W)). Only a graph can feed it several inputs."""
    op: Literal["merge"] = "merge"
    mode: Literal["concat", "add", "mul", "max"]
    axis: Int = 0

    def infer(self, x, path):
        if not x or not all(isinstance(s, tuple) for s in x) or len(x) < 2:
            _fail(path, "merge", "a merge takes two or more tensors of a graph (inputs: [a, b, ...])")
        first = x[0]
        if self.mode != "concat":
            out = tuple(max(d) for d in zip(*x)) if all(len(s) == len(first) for s in x) else None
            if out is None or any(d not in (1, o) for s in x for d, o in zip(s, out)):
                _fail(path, "merge", f"cannot {self.mode} inputs of shapes {list(x)}: they do not broadcast")
            return out
        a = _axis(first, self.axis, path, "concat")
        if any(len(s) != len(first) or s[:a] + s[a + 1:] != first[:a] + first[a + 1:] for s in x[1:]):
            _fail(path, "merge", f"cannot concat inputs of shapes {list(x)} along axis {a}: other dims differ")
        return (*first[:a], sum(s[a] for s in x), *first[a + 1:])


# ---------------------------------------------------------------------------- combinators
def check_names(nodes: list["_Node"], path: str) -> None:
    seen: set[str] = set()
    for n in nodes:
        if n.name in seen:
            _fail(path, "name", f"two children are named {n.name!r}; module names must be unique")
        seen.add(n.name)


class _Combinator(_Node):
    """A node whose shape rule runs its children through the generic walk."""


class Sequential(_Combinator):
    """Children applied one after another."""
    op: Literal["seq"] = "seq"
    layers: list["Node"]

    def children(self):
        return self.layers

    def walk(self, x, path, visit):
        if not self.layers:
            _fail(path, "empty", "a sequence needs at least one layer")
        check_names(self.layers, path)
        for child in self.layers:
            x = visit(child, x)
        return x


class Parallel(_Combinator):
    """Every branch sees the same input; outputs merged by channel ``concat``, ``add`` or ``max``.

    A residual connection is ``Parallel([body, Identity], merge="add")``. With ``split`` the
    input channels are cut into consecutive chunks of those sizes, one per branch
    (ShuffleNet V2's channel split).
    """
    op: Literal["parallel"] = "parallel"
    branches: list["Node"]
    merge: Literal["concat", "add", "max"]
    split: Optional[list[Int]] = Field(None, description="channel chunk sizes, one per branch")

    def children(self):
        return self.branches

    def walk(self, x, path, visit):
        if not self.branches:
            _fail(path, "merge", "parallel needs at least one branch")
        check_names(self.branches, path)
        inputs = [x] * len(self.branches)
        if self.split is not None:
            if len(self.split) != len(self.branches) or min(self.split) < 1 or sum(self.split) != x[0]:
                _fail(path, "split", f"split {self.split} must give each of the {len(self.branches)} "
                                     f"branches >= 1 channel and sum to the {x[0]} input channels")
            inputs = [(c, *x[1:]) for c in self.split]
        outs = [(b.name, visit(b, xi)) for b, xi in zip(self.branches, inputs)]
        first_name, first = outs[0]
        for name, o in outs[1:]:
            if self.merge == "concat":
                if len(o) != len(first) or o[1:] != first[1:]:
                    _fail(path, "merge", f"cannot concat branch {name!r} {o} with {first_name!r} "
                                         f"{first}: non-channel dims differ")
            elif o != first:
                _fail(path, "merge", f"cannot {self.merge} branch {name!r} {o} with {first_name!r} {first}: "
                                     "shapes differ")
        if self.merge == "concat":
            _need_rank(first, (1, 3, 4), path, "concat")
            return (sum(o[0] for _, o in outs), *first[1:])
        return first


class Scale(_Combinator):
    """``x * gate(x)``; the gate's output broadcasts over x (SE: (C, 1, 1))."""
    op: Literal["scale"] = "scale"
    gate: "Node"

    def children(self):
        return [self.gate]

    def walk(self, x, path, visit):
        g = visit(self.gate, x)
        if len(g) != len(x) or g[0] != x[0] or any(gi not in (1, xi) for gi, xi in zip(g[1:], x[1:])):
            _fail(path, "gate", f"gate output {g} does not broadcast over the input {x}")
        return x


class ShiftMax(_Combinator):
    """MicroNet's Dynamic Shift-Max (Li et al., 2021, arXiv:2108.05894, Sec. 3.2).

    ``gate`` maps x (C, H, W) to 2*fusions*C coefficients in [0, 1] (global pool -> MLP ->
    hardsigmoid); they are rescaled to ``(y - 0.5) * 2 * act_max`` and offset by ``init_a`` /
    ``init_b``. With x2 the circular group shift of x (channels viewed as (groups, C/groups),
    rolled by one along both axes), the output is
    ``max_k(a_k * x + b_k * x2)`` over ``fusions`` (1 or 2) fusions.
    """
    op: Literal["shift_max"] = "shift_max"
    gate: "Node"
    groups: Int
    fusions: Literal[1, 2]
    act_max: float = 2.0
    init_a: tuple[float, float] = (1.0, 1.0)
    init_b: tuple[float, float] = (0.0, 0.0)

    def children(self):
        return [self.gate]

    def walk(self, x, path, visit):
        _need_rank(x, (3,), path, "shift_max")
        if self.groups < 1 or x[0] % self.groups:
            _fail(path, "groups", f"shift groups={self.groups} must divide the {x[0]} channels")
        g = visit(self.gate, x)
        if g != (2 * self.fusions * x[0],):
            _fail(path, "gate", f"gate must give {2 * self.fusions * x[0]} coefficients "
                                f"(2 x {self.fusions} fusion(s) x {x[0]} channels), got {g}")
        return x

    def macs(self, x, y):
        # the dynamic fusion itself: two multiplies (a*x, b*x2) per element and fusion
        return 2 * self.fusions * _prod(x)


class Graph(_Combinator):
    """Named nodes with explicit inputs, for what nesting cannot say: DenseNet's concatenations,
    U-Net's cross-stage skips, several outputs. ``inputs[name]`` lists the tensors a node reads:
    the graph's input (named by ``input``) or earlier nodes; a node not listed reads the node
    before it (the first, the graph's input). Only a :class:`Merge` reads several. ``outputs``
    (default: the last node) are returned in order; a graph with several outputs must be the
    network's last top-level layer, whose forward then returns a tuple."""
    op: Literal["graph"] = "graph"
    nodes: list["Node"]
    inputs: dict[str, list[str]] = Field(default_factory=dict)
    outputs: list[str] = Field(default_factory=list)
    input: Union[str, list[str]] = Field("x", description="the name of the graph's input, or a list of names: "
                                                         "a graph reading several tensors, like a merge")

    def children(self):
        return self.nodes

    def input_names(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)

    def refs(self) -> list[list[str]]:
        """The input references of each node, defaults resolved."""
        prev = self.input_names()[:1] + [n.name for n in self.nodes[:-1]]
        return [list(self.inputs.get(n.name, [p])) for n, p in zip(self.nodes, prev)]

    def output_names(self) -> list[str]:
        return list(self.outputs) or [self.nodes[-1].name]

    def walk(self, x, path, visit):
        if not self.nodes:
            _fail(path, "empty", "a graph needs at least one node")
        check_names(self.nodes, path)
        names = {n.name for n in self.nodes}
        ins = self.input_names()
        if set(ins) & names or len(set(ins)) != len(ins) or not ins:
            _fail(path, "name", f"the graph's inputs {ins} must be distinct and differ from its node names")
        several = len(ins) > 1
        if several != (bool(x) and isinstance(x[0], tuple)) or (several and len(x) != len(ins)):
            _fail(path, "graph", f"the graph reads {len(ins)} tensor(s) {ins} but is given {x}")
        for k in set(self.inputs) - names:
            _fail(path, "graph", f"inputs lists {k!r}, which is no node of this graph")
        env: dict[str, Shape] = dict(zip(ins, x)) if several else {ins[0]: x}
        read: set[str] = set()
        for node, refs in zip(self.nodes, self.refs()):
            where = f"{path}.{node.name}" if path else node.name
            for r in refs:
                if r not in env:
                    _fail(where, "graph", f"input {r!r} is " + ("a later node" if r in names else "no node")
                          + f"; a node reads the graph inputs {ins} or nodes before it")
            takes = len(node.input_names()) if isinstance(node, Graph) else 2 if isinstance(node, Merge) else 1
            if not refs or (len(refs) > 1) != (takes > 1) or (isinstance(node, Graph) and len(refs) != takes):
                _fail(where, "graph", f"reads {refs}: a merge reads two or more tensors, a graph as many as "
                                      f"its inputs, any other node one")
            read.update(refs)
            env[node.name] = visit(node, tuple(env[r] for r in refs) if len(refs) > 1 else env[refs[0]])
        outs = self.output_names()
        for o in outs:
            if o not in names:
                _fail(path, "graph", f"output {o!r} is no node of this graph")
        unused = [n.name for n in self.nodes if n.name not in read and n.name not in outs]
        if unused:
            _fail(path, "graph", f"the outputs of {unused} are never read; remove them or list them as outputs")
        return env[outs[0]] if len(outs) == 1 else tuple(env[o] for o in outs)


Node = Annotated[
    Union[Conv, ConvTranspose, BatchNorm, GroupNorm, LayerNorm, Act, HardSigmoid, MaxPool, AvgPool, GlobalAvgPool,
          AdaptiveAvgPool, Upsample, Flatten, Reshape, Linear, Dropout, Identity, ChannelShuffle,
          PReLU, HardTanh, Softmax, L2Normalize, Permute, Mean, Pad, Affine, LayerScale, Slice, PixelShuffle, Merge,
          Sequential, Parallel, Scale, ShiftMax, Graph],
    Field(discriminator="op"),
]
OPS: dict[str, type[_Node]] = {c.model_fields["op"].default: c for c in get_args(get_args(Node)[0])}

for _cls in (Sequential, Parallel, Scale, ShiftMax, Graph):
    _cls.model_rebuild()
