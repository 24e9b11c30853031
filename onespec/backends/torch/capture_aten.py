"""ATen operators of a ``torch.export`` graph (the default IR: conv2d, batch_norm, linear, gelu
... stay whole) -> onespec leaf ops, one entry each.

An entry ``f(a: Args) -> Op | DROP`` reads the node's arguments through ``Args`` (tensor inputs,
parameters by their original names, sample shapes without the batch dim) and returns the leaf
with the tensor inputs it reads and the parameters it owns; ``DROP`` marks an op that is the
identity at inference (dropout, contiguous, clone, assertions). ``Unsupported`` says why an op
has no onespec equivalent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...capture.ir import DROP, Call, Op, Unsupported
from ...spec import nodes as N


@dataclass
class Args(Call):
    """The arguments of one export node (``out``: its result's sample shape). ``shape(t)``: a
    tensor's sample shape (no batch); ``param(t)``: the original state_dict key of a
    parameter/buffer input, else None."""
    param: Callable = lambda t: None

    def tensor(self, i: int):
        t = self.args[i]
        if self.param(t) is not None:
            raise Unsupported(f"a parameter ({self.param(t)}) is used as data")
        return t

    def owned(self, spec: list[tuple[int, str, str]]) -> list[tuple[str, str]]:
        """(canonical name, original key) of the parameters at the given argument positions."""
        out = []
        for i, kw, canonical in spec:
            t = self.arg(i, kw)
            if t is None:
                continue
            key = self.param(t)
            if key is None:
                raise Unsupported(f"its {canonical} is computed in the forward, not a parameter")
            out.append((canonical, key))
        return out


def _pair(v, n=2):
    return tuple(v) if isinstance(v, (list, tuple)) else (v,) * n


def _one(v):
    """A per-dim tuple as one int where all dims agree (the spec's compact form)."""
    v = _pair(v)
    return v[0] if len(set(v)) == 1 else tuple(v)


def _conv(a: Args) -> Op:
    w = a.arg(1, "weight")
    ws = a.shape(w, batch=False)
    pad = a.arg(4, "padding", 0)
    node = N.Conv(name="op", out_channels=ws[0], kernel=_one(ws[2:]), stride=_one(a.arg(3, "stride", 1)),
                  padding="same" if pad == "same" else 0 if pad == "valid" else _one(pad),
                  dilation=_one(a.arg(5, "dilation", 1)), groups=a.arg(6, "groups", 1), bias=a.arg(2, "bias") is not None)
    return Op(node, [a.tensor(0)], a.owned([(1, "weight", "weight"), (2, "bias", "bias")]))


def _conv_transpose(a: Args) -> Op:
    ws = a.shape(a.arg(1, "weight"), batch=False)
    groups = a.arg(6, "groups", 1)
    node = N.ConvTranspose(name="op", out_channels=ws[1] * groups, kernel=_one(ws[2:]), stride=_one(a.arg(3, "stride", 1)),
                           padding=_one(a.arg(4, "padding", 0)), output_padding=_one(a.arg(5, "output_padding", 0)),
                           groups=groups, dilation=_one(a.arg(7, "dilation", 1)), bias=a.arg(2, "bias") is not None)
    return Op(node, [a.tensor(0)], a.owned([(1, "weight", "weight"), (2, "bias", "bias")]))


def _batch_norm(a: Args) -> Op:
    if a.arg(3, "running_mean") is None:
        raise Unsupported("batch norm without running statistics")
    node = N.BatchNorm(name="op", eps=float(a.arg(7, "eps", 1e-5)), momentum=float(a.arg(6, "momentum", 0.1) or 0.1),
                       affine=a.arg(1, "weight") is not None)
    return Op(node, [a.tensor(0)], a.owned([(1, "weight", "weight"), (2, "bias", "bias"),
                                            (3, "running_mean", "running_mean"), (4, "running_var", "running_var")]))


def _norm(cls, w: int, **kw):
    def make(a: Args) -> Op:
        node = cls(name="op", affine=a.arg(w, "weight") is not None, **{k: f(a) for k, f in kw.items()})
        return Op(node, [a.tensor(0)], a.owned([(w, "weight", "weight"), (w + 1, "bias", "bias")]))
    return make


def _layer_norm(a: Args) -> Op:
    if len(a.arg(1, "normalized_shape")) != 1:
        raise Unsupported("layer norm over more than the last dim")
    return _norm(N.LayerNorm, 2, eps=lambda a: float(a.arg(4, "eps", 1e-5)), last_axis=lambda a: True)(a)


def _linear(a: Args) -> Op:
    ws = a.shape(a.arg(1, "weight"), batch=False)
    node = N.Linear(name="op", out_features=ws[0], bias=a.arg(2, "bias") is not None,
                    last_axis=len(a.shape(a.args[0])) > 1)
    return Op(node, [a.tensor(0)], a.owned([(1, "weight", "weight"), (2, "bias", "bias")]))


def _simple(make: Callable[[Args], Any]):
    """A parameter-free op on its first argument."""
    return lambda a: Op(make(a), [a.tensor(0)])


def _act(fn: str):
    return _simple(lambda a: N.Act(name="op", fn=fn))


def _hardtanh(a: Args):
    lo, hi = float(a.arg(1, "min_val", -1.0)), float(a.arg(2, "max_val", 1.0))
    node = N.Act(name="op", fn="relu6") if (lo, hi) == (0.0, 6.0) else N.HardTanh(name="op", min_val=lo, max_val=hi)
    return Op(node, [a.tensor(0)])


def _gelu(a: Args):
    approx = a.kwargs.get("approximate", a.args[1] if len(a.args) > 1 else "none")
    return Op(N.Act(name="op", fn="gelu_tanh" if approx == "tanh" else "gelu"), [a.tensor(0)])


def _prelu(a: Args) -> Op:
    n = a.shape(a.args[1], batch=False)
    return Op(N.PReLU(name="op", shared=n == (1,)), [a.tensor(0)], a.owned([(1, "weight", "weight")]))


def _axis(a: Args, i: int, name: str, default=None, tensor=None) -> int:
    d = a.arg(i, name, default)
    if d == 0 or d == -len(a.shape(a.args[0] if tensor is None else tensor)) - 1:
        raise Unsupported("it works along the batch dim")
    return d - 1 if d > 0 else d


def _pool(cls, a: Args, ceil_at: int, **extra):
    k = _pair(a.arg(1, "kernel_size"))
    s = a.arg(2, "stride", None) or k
    kw = dict(kernel=_one(k), stride=_one(s), padding=_one(a.arg(3, "padding", 0)),
              ceil_mode=bool(a.arg(ceil_at, "ceil_mode", False)), **extra)
    return Op(cls(name="op", **kw), [a.tensor(0)])


def _max_pool(a: Args) -> Op:
    if set(_pair(a.arg(4, "dilation", 1))) != {1}:
        raise Unsupported("a dilated max pool")
    return _pool(N.MaxPool, a, 5)


def _avg_pool(a: Args) -> Op:
    if a.arg(6, "divisor_override") is not None:
        raise Unsupported("an average pool with divisor_override")
    return _pool(N.AvgPool, a, 4, count_include_pad=bool(a.arg(5, "count_include_pad", True)))


def _adaptive(a: Args) -> Op:
    size = _pair(a.arg(1, "output_size"))
    node = N.GlobalAvgPool(name="op") if size == (1, 1) else N.AdaptiveAvgPool(name="op", output_size=_one(size))
    return Op(node, [a.tensor(0)])


def _mean(a: Args) -> Op:
    x = a.shape(a.args[0])
    dims = a.arg(1, "dim")
    if not dims:
        raise Unsupported("a mean over every dim, the batch included")
    keep = bool(a.arg(2, "keepdim", False))
    axes = tuple(sorted((d if d >= 0 else d + len(x) + 1) - 1 for d in dims))
    if min(axes) < 0:
        raise Unsupported("a mean over the batch dim")
    if keep and len(x) in (3, 4) and axes == tuple(range(1, len(x))):
        return Op(N.GlobalAvgPool(name="op"), [a.tensor(0)])
    return Op(N.Mean(name="op", axes=axes, keepdim=keep), [a.tensor(0)])


def _reshape(a: Args) -> Op:
    out = a.out
    node = N.Flatten(name="op") if len(out) == 1 else N.Reshape(name="op", shape=out)
    return Op(node, [a.tensor(0)])


def _permute(a: Args) -> Op:
    dims = [d % (len(a.shape(a.args[0])) + 1) for d in a.arg(1, "dims")]
    if dims[0] != 0:
        raise Unsupported("a permute that moves the batch dim")
    return Op(N.Permute(name="op", dims=tuple(d - 1 for d in dims[1:])), [a.tensor(0)])


def _transpose(a: Args) -> Op:
    rank = len(a.shape(a.args[0])) + 1
    i, j = (d % rank for d in (a.args[1], a.args[2]))
    dims = list(range(rank))
    dims[i], dims[j] = dims[j], dims[i]
    if dims[0] != 0:
        raise Unsupported("a transpose that moves the batch dim")
    return Op(N.Permute(name="op", dims=tuple(d - 1 for d in dims[1:])), [a.tensor(0)])


def _binary(mode: str):
    """add/mul of two graph tensors (a merge), or of a tensor and a number (an affine)."""
    def make(a: Args) -> Op:
        x, y = a.args[0], a.args[1]
        alpha = a.kwargs.get("alpha", 1)
        if isinstance(y, (int, float)) and not isinstance(y, bool):
            y = float(y) * alpha
            node = N.Affine(name="op", shift=y) if mode == "add" else N.Affine(name="op", scale=y)
            if mode == "sub":
                node = N.Affine(name="op", shift=-y)
            if mode == "div":
                node = N.Affine(name="op", scale=1.0 / y)
            return Op(node, [a.tensor(0)])
        if mode in ("sub", "div") or alpha != 1:
            raise Unsupported(f"{mode} of two tensors")
        if mode == "mul" and (a.param(x) is None) != (a.param(y) is None):
            return _layer_scale(a, *((y, x) if a.param(x) is not None else (x, y)))
        if a.param(x) is not None or a.param(y) is not None:
            raise Unsupported(f"{mode} with a parameter (no onespec op owns it)")
        if len(a.shape(x)) != len(a.shape(y)):
            raise Unsupported(f"{mode} of tensors of different ranks {a.shape(x)} and {a.shape(y)}")
        return Op(N.Merge(name="op", mode=mode), [x, y])
    return make


def _layer_scale(a: Args, x, gamma) -> Op:
    """A tensor times a parameter of one value per channel (``(C, 1, 1)``: ConvNeXt's
    ``layer_scale``) or per feature of the last dim (``(D,)``: CaiT's ``gamma``)."""
    x_shape, g = a.shape(x), a.shape(gamma, batch=False)
    if g == (x_shape[0],) + (1,) * (len(x_shape) - 1):
        last = False
    elif g == (x_shape[-1],):
        last = True
    else:
        raise Unsupported(f"mul by a parameter of shape {g} on {x_shape}: neither one value per channel "
                          f"nor one per feature of the last dim")
    return Op(N.LayerScale(name="op", last_axis=last), [x], [("gamma", a.param(gamma))])


def _maximum(a: Args) -> Op:
    x, y = a.args[0], a.args[1]
    if a.param(x) is not None or a.param(y) is not None or len(a.shape(x)) != len(a.shape(y)):
        raise Unsupported("a maximum with a parameter or of tensors of different ranks")
    return Op(N.Merge(name="op", mode="max"), [x, y])


def _clamp(a: Args) -> Op:
    lo, hi = a.arg(1, "min"), a.arg(2, "max")
    if lo is None or hi is None:
        if (lo, hi) == (0, None) or (lo, hi) == (0.0, None):
            return Op(N.Act(name="op", fn="relu"), [a.tensor(0)])
        raise Unsupported("a clamp with one bound")
    return _hardtanh(Args((a.args[0], lo, hi), {}, a.out, a.shape, a.param))


def _cat(a: Args) -> Op:
    ts = list(a.args[0])
    if any(a.param(t) is not None for t in ts):
        raise Unsupported("a concat with a parameter")
    if len(ts) == 1:
        return DROP  # type: ignore[return-value]
    return Op(N.Merge(name="op", mode="concat", axis=_axis(a, 1, "dim", 0, ts[0])), ts)


def _pad(a: Args) -> Op:
    flat = list(a.arg(1, "pad"))
    mode = a.arg(2, "mode", "constant")
    if mode != "constant":
        raise Unsupported(f"{mode} padding")
    if len(flat) // 2 != len(a.shape(a.args[0])) - 1 or min(flat) < 0:
        raise Unsupported(f"padding {flat} of other than every spatial dim (or negative)")
    pairs = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)][::-1]  # torch: last dim first
    return Op(N.Pad(name="op", pads=tuple(pairs), value=float(a.arg(3, "value", 0.0) or 0.0)), [a.tensor(0)])


def _slice(a: Args) -> Op:
    x = a.shape(a.args[0])
    axis = _axis(a, 1, "dim", 0)
    n = x[axis]
    start, stop, step = a.arg(2, "start", 0) or 0, a.arg(3, "end", n), a.arg(4, "step", 1)
    start, stop = max(0, start + n if start < 0 else start), min(n, stop + n if stop < 0 else stop)
    if step != 1:
        raise Unsupported("a strided slice")
    if (start, stop) == (0, n):
        return DROP  # type: ignore[return-value]
    return Op(N.Slice(name="op", axis=axis, start=start, stop=stop), [a.tensor(0)])


def _upsample(mode: str):
    def make(a: Args) -> Op:
        x, out = a.shape(a.args[0]), a.out
        if any(o % i for o, i in zip(out[1:], x[1:])):
            raise Unsupported(f"upsampling {x} to {out} by a non-integer scale")
        scale = _one(tuple(o // i for o, i in zip(out[1:], x[1:])))
        kw = {"align_corners": bool(a.arg(2, "align_corners", False))} if mode == "bilinear" else {}
        return Op(N.Upsample(name="op", scale=scale, mode=mode, **kw), [a.tensor(0)])
    return make


def _softmax(a: Args) -> Op:
    return Op(N.Softmax(name="op", axis=_axis(a, 1, "dim")), [a.tensor(0)])


def _hardsigmoid(a: Args) -> Op:
    return Op(N.HardSigmoid(name="op"), [a.tensor(0)])


def _drop(a: Args):
    return DROP


def _dropout(a: Args):
    """Dropout stays in the spec (the identity at inference; training the spec drops as the module
    does); channel-wise and alpha dropout, which no onespec op has, are dropped at inference."""
    p = float(a.arg(1, "p", 0.5))
    return Op(N.Dropout(name="op", p=p), [a.tensor(0)]) if p > 0 else DROP


# the ATen overload packet name (``aten.conv2d``) -> its translation
TABLE: dict[str, Callable[[Args], Any]] = {
    "conv1d": _conv, "conv2d": _conv, "conv3d": _conv, "conv_transpose2d": _conv_transpose,
    "batch_norm": _batch_norm, "layer_norm": _layer_norm,
    "group_norm": _norm(N.GroupNorm, 2, groups=lambda a: a.args[1], eps=lambda a: float(a.arg(4, "eps", 1e-5))),
    "linear": _linear,
    "relu": _act("relu"), "relu_": _act("relu"), "relu6": _act("relu6"), "silu": _act("swish"), "silu_": _act("swish"),
    "sigmoid": _act("sigmoid"), "tanh": _act("tanh"), "hardswish": _act("hardswish"), "hardswish_": _act("hardswish"),
    "hardsigmoid": _hardsigmoid, "hardsigmoid_": _hardsigmoid, "hardtanh": _hardtanh, "hardtanh_": _hardtanh,
    "gelu": _gelu, "prelu": _prelu, "softmax": _softmax, "_softmax": _softmax,
    "max_pool2d": _max_pool, "avg_pool2d": _avg_pool, "adaptive_avg_pool2d": _adaptive, "mean": _mean,
    "flatten": _reshape, "view": _reshape, "reshape": _reshape, "_unsafe_view": _reshape, "unflatten": _reshape,
    "squeeze": _reshape, "unsqueeze": _reshape,
    "permute": _permute, "transpose": _transpose,
    "add": _binary("add"), "add_": _binary("add"), "mul": _binary("mul"), "mul_": _binary("mul"),
    "sub": _binary("sub"), "div": _binary("div"),
    "maximum": _maximum, "clamp": _clamp, "clamp_": _clamp, "clamp_min": _clamp, "clamp_min_": _clamp,
    "cat": _cat, "pad": _pad, "constant_pad_nd": _pad, "slice": _slice, "narrow": None,  # type: ignore[dict-item]
    "pixel_shuffle": lambda a: Op(N.PixelShuffle(name="op", factor=a.args[1]), [a.tensor(0)]),
    "upsample_nearest2d": _upsample("nearest"), "upsample_bilinear2d": _upsample("bilinear"),
    "channel_shuffle": lambda a: Op(N.ChannelShuffle(name="op", groups=a.args[1]), [a.tensor(0)]),
    "dropout": _dropout, "dropout_": _dropout, "feature_dropout": _drop, "alpha_dropout": _drop, "contiguous": _drop,
    "clone": _drop, "detach": _drop, "alias": _drop, "lift_fresh_copy": _drop, "_to_copy": _drop, "to": _drop,
    "identity": _drop,
}
TABLE = {k: v for k, v in TABLE.items() if v is not None}

# ops that say *why* a model cannot be captured
REASONS = {
    "item": "`.item()` reads a tensor's value into Python: the forward depends on the data",
    "_local_scalar_dense": "`.item()` reads a tensor's value into Python: the forward depends on the data",
    "cond": "data-dependent control flow (torch.cond)",
    "while_loop": "data-dependent control flow (a while loop)",
}

# ops that only check or describe (shape assertions, symbolic sizes): no computation
SILENT = {"_assert_tensor_metadata", "_assert_scalar", "sym_size", "sym_constrain_range_for_size",
          "_assert_async", "sym_numel", "sym_stride", "sym_storage_offset"}
