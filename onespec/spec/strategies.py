"""Hypothesis strategies drawing random *valid* specs from every op and combinator (for the
property tests and ``make fuzz``). Imports hypothesis, a test dependency: import this module
only from tests."""
from __future__ import annotations

from hypothesis import strategies as st

from ..errors import SpecError
from .model import ModelMeta, ModelSpec
from .nodes import (Act, AdaptiveAvgPool, Affine, AvgPool, BatchNorm, ChannelShuffle, Conv, ConvTranspose, Dropout,
                    Flatten, GlobalAvgPool, Graph, GroupNorm, HardSigmoid, HardTanh, Identity, L2Normalize, LayerNorm,
                    LayerScale, Linear, MaxPool, Mean, Merge, Pad, Parallel, Permute, PixelShuffle, PReLU, Reshape, Scale,
                    Sequential, ShiftMax, Slice, Softmax, Upsample)


def _divisors(c: int) -> list[int]:
    return [d for d in range(1, c + 1) if c % d == 0]


ACT_FNS = ("relu", "relu6", "hardswish", "sigmoid", "swish", "tanh", "gelu", "gelu_tanh")
KINDS = ("conv", "bn", "gn", "ln", "act", "hsig", "shuffle", "identity", "dropout", "adaptive", "reshape",
         "maxpool", "avgpool", "upsample", "convt", "residual", "concat", "se", "shiftmax",
         "prelu", "hardtanh", "softmax", "l2norm", "pad", "affine", "layerscale", "slice", "pixelshuffle", "permute",
         "mean", "graph")


@st.composite
def image_layer(draw, c: int, hw: tuple[int, int], name: str, depth: int, kind: str | None = None):
    """One node valid for input (c, *hw), of ``kind`` (one of ``KINDS``) or a random kind."""
    h, w = hw
    # one fixed list (hypothesis draws indices; a context-dependent list skews them), then what
    # the input cannot take falls back to a conv
    if (kind := kind or draw(st.sampled_from(KINDS))) in _CAPTURE_OPS:
        return draw(_capture_op(kind, c, hw, name))
    if (kind in ("maxpool", "avgpool") and min(h, w) < 2) or (kind in ("upsample", "convt") and max(h, w) > 8) \
            or (kind in ("residual", "concat", "se", "shiftmax", "graph") and depth >= 2):
        kind = "conv"
    if kind == "conv":
        k = draw(st.integers(1, min(3, h, w)))
        groups = draw(st.sampled_from(_divisors(c)))
        out = groups * draw(st.integers(1, 3))
        node = Conv(name=name, out_channels=out, kernel=k, stride=draw(st.integers(1, 2)),
                    padding=draw(st.sampled_from([*range(k // 2 + 1), "same"])), groups=groups,
                    bias=draw(st.booleans()))
    elif kind == "convt":
        s = draw(st.integers(1, 2))
        k = draw(st.integers(1, 3))
        node = ConvTranspose(name=name, out_channels=draw(st.integers(1, 6)), kernel=k, stride=s,
                             padding=draw(st.integers(0, k - 1)), output_padding=draw(st.integers(0, s - 1)),
                             bias=draw(st.booleans()))
    elif kind == "bn":
        node = BatchNorm(name=name, affine=draw(st.booleans()), momentum=draw(st.sampled_from([0.1, 0.01])))
    elif kind == "gn":
        node = GroupNorm(name=name, groups=draw(st.sampled_from(_divisors(c))), affine=draw(st.booleans()))
    elif kind == "ln":
        node = LayerNorm(name=name, affine=draw(st.booleans()))
    elif kind == "act":
        node = Act(name=name, fn=draw(st.sampled_from(ACT_FNS)))
    elif kind == "hsig":
        node = HardSigmoid(name=name, slope=draw(st.sampled_from([1 / 6, 0.2, 0.1666667])))
    elif kind == "shuffle":
        node = ChannelShuffle(name=name, groups=draw(st.sampled_from(_divisors(c))))
    elif kind == "identity":
        node = Identity(name=name)
    elif kind == "adaptive":  # shrink, keep or grow each dim, evenly or not
        node = AdaptiveAvgPool(name=name, output_size=(draw(st.integers(1, h + 2)), draw(st.integers(1, w + 2))))
    elif kind == "reshape":  # fold width into channels and back out: (C, H, W) -> (C*W, H, 1)... as HybridSN folds depth
        node = Reshape(name=name, shape=(c * w, h, 1))
    elif kind == "dropout":
        node = Dropout(name=name, p=draw(st.sampled_from([0.0, 0.2, 0.5])))
    elif kind in ("maxpool", "avgpool"):
        k = draw(st.integers(2, min(3, h, w)))
        kw = dict(name=name, kernel=k, stride=draw(st.integers(1, 2)),
                  padding=draw(st.sampled_from([*range(k // 2 + 1), "same"])), ceil_mode=draw(st.booleans()))
        if kind == "avgpool":
            kw["count_include_pad"] = draw(st.booleans())
        if kw["padding"] == "same":  # TensorFlow's rule: no ceil mode, an average over the input only
            kw["ceil_mode"] = kw["count_include_pad"] = False
            if kind == "maxpool":
                del kw["count_include_pad"]
        node = (MaxPool if kind == "maxpool" else AvgPool)(**kw)
    elif kind == "upsample":
        mode = draw(st.sampled_from(["nearest", "bilinear"]))
        node = Upsample(name=name, scale=draw(st.integers(1, 2)), mode=mode,
                        align_corners=draw(st.booleans()) if mode == "bilinear" else None)
    elif kind == "residual":
        body = Sequential(name="body", layers=[
            Conv(name="conv", out_channels=c, kernel=3, padding=1, bias=False), BatchNorm(name="bn")])
        node = Parallel(name=name, merge=draw(st.sampled_from(["add", "max"])), branches=[body, Identity(name="skip")])
    elif kind == "concat":
        split = draw(st.booleans()) and c >= 2
        a = draw(st.integers(1, c - 1)) if split else c
        node = Parallel(name=name, merge="concat", split=[a, c - a] if split else None, branches=[
            Conv(name="left", out_channels=draw(st.integers(1, 4)), kernel=1),
            Sequential(name="right", layers=[Conv(name="conv", out_channels=draw(st.integers(1, 4)), kernel=3,
                                                  padding=1), Act(name="relu", fn="relu")])])
    elif kind == "se":
        node = Scale(name=name, gate=Sequential(name="gate", layers=[
            GlobalAvgPool(name="pool"), Conv(name="fc1", out_channels=max(1, c // 2), kernel=1),
            Act(name="relu", fn="relu"), Conv(name="fc2", out_channels=c, kernel=1),
            HardSigmoid(name="hsig", slope=0.2)]))
    else:  # shiftmax
        f = draw(st.sampled_from([1, 2]))
        node = ShiftMax(name=name, groups=draw(st.sampled_from(_divisors(c))), fusions=f, gate=Sequential(
            name="gate", layers=[GlobalAvgPool(name="pool"), Flatten(name="flat"),
                                 Linear(name="fc", out_features=2 * f * c), HardSigmoid(name="hsig")]))
    return node


_CAPTURE_OPS = ("prelu", "hardtanh", "softmax", "l2norm", "pad", "affine", "layerscale", "slice", "pixelshuffle",
                "permute", "mean", "graph")


@st.composite
def _capture_op(draw, kind: str, c: int, hw: tuple[int, int], name: str):
    """One of the ops captured models need, valid for input (c, *hw); a conv where it cannot be
    (a slice of one channel, a pixel shuffle of a large map)."""
    if (kind == "slice" and c < 2) or (kind == "pixelshuffle" and max(hw) > 8):
        return Conv(name=name, out_channels=c, kernel=1)
    if kind == "prelu":
        return PReLU(name=name, shared=draw(st.booleans()))
    if kind == "hardtanh":
        return HardTanh(name=name, min_val=draw(st.sampled_from([-1.0, 0.0])), max_val=draw(st.sampled_from([1.0, 6.0])))
    if kind in ("softmax", "l2norm"):
        return (Softmax if kind == "softmax" else L2Normalize)(name=name, axis=draw(st.sampled_from([0, -1])))
    if kind == "pad":
        return Pad(name=name, pads=tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2)),
                   value=draw(st.sampled_from([0.0, -1.0])))
    if kind == "affine":
        return Affine(name=name, scale=draw(st.sampled_from([0.5, 2.0])), shift=draw(st.sampled_from([-1.0, 0.5])))
    if kind == "layerscale":
        return LayerScale(name=name)
    if kind == "slice":
        start = draw(st.integers(0, c - 2))
        return Slice(name=name, start=start, stop=draw(st.integers(start + 1, c)))
    if kind == "pixelshuffle":  # after a conv to 4 channels, as in a super-resolution head
        return Sequential(name=name, layers=[Conv(name="conv", out_channels=4 * draw(st.integers(1, 2)), kernel=1),
                                             PixelShuffle(name="shuffle", factor=2)])
    if kind == "permute":
        return Permute(name=name, dims=(0, 2, 1))
    if kind == "mean":
        return Mean(name=name, axes=draw(st.sampled_from([(1,), (2,), (1, 2)])), keepdim=True)
    mode = draw(st.sampled_from(["concat", "add", "mul", "max"]))  # graph: two convs of x merged, then an activation
    return Graph(name=name, nodes=[
        Conv(name="a", out_channels=c, kernel=1), Conv(name="b", out_channels=c, kernel=3, padding=1),
        Merge(name="m", mode=mode), Act(name="act", fn="gelu")], inputs={"b": ["x"], "m": ["a", "b"]})


@st.composite
def specs(draw, max_layers: int = 6, first: str | None = None) -> ModelSpec:
    """A random valid image model: (C, H, W) input, random layers (the first of kind ``first``
    when given), then a linear head."""
    c = draw(st.integers(1, 6))
    hw = (draw(st.integers(3, 8 if first else 10)), draw(st.integers(3, 8 if first else 10)))
    layers = []
    shape = (c, *hw)
    for i in range(draw(st.integers(1, max_layers))):
        node = draw(image_layer(shape[0], shape[1:], f"l{i}", 0, first if i == 0 else None))
        if not _valid(c, hw, [*layers, node]):
            continue
        layers.append(node)
        shape = _out(c, hw, layers)
        if shape[0] * shape[1] * shape[2] > 4096 or min(shape[1:]) < 1:
            layers.pop()
            shape = _out(c, hw, layers) if layers else (c, *hw)
    ln = draw(st.booleans())
    # a LayerNorm over one feature outputs its beta whatever comes in: the gradient reaching the
    # layers before it is rounding noise in every framework, nothing a comparison can hold to
    head = [Flatten(name="flat"), Linear(name="fc", out_features=draw(st.integers(2 if ln else 1, 5)))]
    if draw(st.booleans()):
        head.insert(1, BatchNorm(name="bn1d"))
    if ln:
        head.append(LayerNorm(name="ln1d"))
    return ModelSpec(name="property", input_shape=(c, *hw), layers=layers + head, meta=ModelMeta(family="property"))


def _valid(c, hw, layers) -> bool:
    try:
        _out(c, hw, layers)
        return True
    except (SpecError, ValueError):
        return False


def _out(c, hw, layers):
    from .model import trace

    spec = ModelSpec.model_construct(name="p", input_shape=(c, *hw), layers=layers, meta=ModelMeta(family="p"))
    rows = trace(spec)
    return next(r.out_shape for r in reversed(rows) if r.depth == 0)
