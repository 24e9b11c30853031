"""Hypothesis strategies drawing random *valid* specs from every op and combinator (for the
property tests and ``make fuzz``).

The kinds of layer drawn come from the op registry (``onespec.spec.OPS``): each op is a kind,
an op drawn in several forms (``FORMS``) a kind per form, and the ops that only appear inside
another's structure (``INSIDE``) are drawn there. An op added to the registry without a drawer
here makes the strategy fail, so the property tests cannot silently leave it out."""
from __future__ import annotations

from hypothesis import strategies as st

from onespec.errors import SpecError
from onespec.spec import (OPS, Act, AdaptiveAvgPool, AvgPool, BatchNorm, ChannelShuffle, Conv, ConvTranspose, Dropout,
                          Flatten, GlobalAvgPool, GroupNorm, HardSigmoid, Identity, LayerNorm, Linear, MaxPool,
                          ModelMeta, ModelSpec, Parallel, Reshape, Scale, Sequential, ShiftMax, Upsample, trace)
from onespec.spec.nodes import (Affine, Graph, HardTanh, L2Normalize, LayerScale, Mean, Merge, Pad, Permute,
                                PixelShuffle, PReLU, Slice, Softmax)

# drawn inside another op: a block's body (seq), a gate's pool (global_avgpool), the head (flatten, linear),
# a graph's merge node (merge)
INSIDE = frozenset({"seq", "global_avgpool", "flatten", "linear", "merge"})
FORMS = {"parallel": ("residual", "concat")}
KINDS = tuple(form for op in OPS if op not in INSIDE for form in FORMS.get(op, (op,)))


def _divisors(c: int) -> list[int]:
    return [d for d in range(1, c + 1) if c % d == 0]


def _conv(draw, c, hw, name):
    h, w = hw
    k = draw(st.integers(1, min(3, h, w)))
    groups = draw(st.sampled_from(_divisors(c)))
    return Conv(name=name, out_channels=groups * draw(st.integers(1, 3)), kernel=k, stride=draw(st.integers(1, 2)),
                padding=draw(st.sampled_from([*range(k // 2 + 1), "same"])), groups=groups, bias=draw(st.booleans()))


def _conv_transpose(draw, c, hw, name):
    s = draw(st.integers(1, 2))
    k = draw(st.integers(1, 3))
    return ConvTranspose(name=name, out_channels=draw(st.integers(1, 6)), kernel=k, stride=s,
                         padding=draw(st.integers(0, k - 1)), output_padding=draw(st.integers(0, s - 1)),
                         bias=draw(st.booleans()))


def _pool(draw, c, hw, name, kind):
    k = draw(st.integers(2, min(3, *hw)))
    kw = dict(name=name, kernel=k, stride=draw(st.integers(1, 2)),
              padding=draw(st.sampled_from([*range(k // 2 + 1), "same"])), ceil_mode=draw(st.booleans()))
    if kind == "avgpool":
        kw["count_include_pad"] = draw(st.booleans())
    if kw["padding"] == "same":  # TensorFlow's rule: no ceil mode, an average over the input only
        kw["ceil_mode"] = kw["count_include_pad"] = False
        if kind == "maxpool":
            del kw["count_include_pad"]
    return (MaxPool if kind == "maxpool" else AvgPool)(**kw)


def _upsample(draw, c, hw, name):
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    return Upsample(name=name, scale=draw(st.integers(1, 2)), mode=mode,
                    align_corners=draw(st.booleans()) if mode == "bilinear" else None)


def _residual(draw, c, hw, name):
    body = Sequential(name="body", layers=[
        Conv(name="conv", out_channels=c, kernel=3, padding=1, bias=False), BatchNorm(name="bn")])
    return Parallel(name=name, merge=draw(st.sampled_from(["add", "max"])), branches=[body, Identity(name="skip")])


def _concat(draw, c, hw, name):
    split = draw(st.booleans()) and c >= 2
    a = draw(st.integers(1, c - 1)) if split else c
    return Parallel(name=name, merge="concat", split=[a, c - a] if split else None, branches=[
        Conv(name="left", out_channels=draw(st.integers(1, 4)), kernel=1),
        Sequential(name="right", layers=[Conv(name="conv", out_channels=draw(st.integers(1, 4)), kernel=3,
                                              padding=1), Act(name="relu", fn="relu")])])


def _scale(draw, c, hw, name):  # a squeeze-and-excitation gate
    return Scale(name=name, gate=Sequential(name="gate", layers=[
        GlobalAvgPool(name="pool"), Conv(name="fc1", out_channels=max(1, c // 2), kernel=1),
        Act(name="relu", fn="relu"), Conv(name="fc2", out_channels=c, kernel=1), HardSigmoid(name="hsig", slope=0.2)]))


def _shift_max(draw, c, hw, name):
    f = draw(st.sampled_from([1, 2]))
    return ShiftMax(name=name, groups=draw(st.sampled_from(_divisors(c))), fusions=f, gate=Sequential(
        name="gate", layers=[GlobalAvgPool(name="pool"), Flatten(name="flat"),
                             Linear(name="fc", out_features=2 * f * c), HardSigmoid(name="hsig")]))


def _slice(draw, c, hw, name):  # needs 2 channels (_fits)
    start = draw(st.integers(0, c - 2))
    return Slice(name=name, start=start, stop=draw(st.integers(start + 1, c)))


def _pixel_shuffle(draw, c, hw, name):  # after a conv to 4k channels, as in a super-resolution head
    return Sequential(name=name, layers=[Conv(name="conv", out_channels=4 * draw(st.integers(1, 2)), kernel=1),
                                         PixelShuffle(name="shuffle", factor=2)])


def _graph(draw, c, hw, name):  # two convs of x merged, then an activation
    mode = draw(st.sampled_from(["concat", "add", "mul", "max"]))
    return Graph(name=name, nodes=[
        Conv(name="a", out_channels=c, kernel=1), Conv(name="b", out_channels=c, kernel=3, padding=1),
        Merge(name="m", mode=mode), Act(name="act", fn="gelu")], inputs={"b": ["x"], "m": ["a", "b"]})


DRAW = {  # kind -> draw(draw, channels, (H, W), name): a node valid for that input
    "conv": _conv, "conv_transpose": _conv_transpose,
    "batchnorm": lambda draw, c, hw, name: BatchNorm(name=name, affine=draw(st.booleans()),
                                                     momentum=draw(st.sampled_from([0.1, 0.01]))),
    "groupnorm": lambda draw, c, hw, name: GroupNorm(name=name, groups=draw(st.sampled_from(_divisors(c))),
                                                     affine=draw(st.booleans())),
    "layernorm": lambda draw, c, hw, name: LayerNorm(name=name, affine=draw(st.booleans())),
    "act": lambda draw, c, hw, name: Act(name=name, fn=draw(st.sampled_from(
        ["relu", "relu6", "hardswish", "sigmoid", "swish", "tanh", "gelu", "gelu_tanh"]))),
    "hardsigmoid": lambda draw, c, hw, name: HardSigmoid(name=name, slope=draw(st.sampled_from([1 / 6, 0.2, 0.1666667]))),
    "channel_shuffle": lambda draw, c, hw, name: ChannelShuffle(name=name, groups=draw(st.sampled_from(_divisors(c)))),
    "identity": lambda draw, c, hw, name: Identity(name=name),
    # shrink, keep or grow each dim, evenly or not
    "adaptive_avgpool": lambda draw, c, hw, name: AdaptiveAvgPool(
        name=name, output_size=(draw(st.integers(1, hw[0] + 2)), draw(st.integers(1, hw[1] + 2)))),
    # fold width into channels: (C, H, W) -> (C*W, H, 1), as HybridSN folds depth
    "reshape": lambda draw, c, hw, name: Reshape(name=name, shape=(c * hw[1], hw[0], 1)),
    "dropout": lambda draw, c, hw, name: Dropout(name=name, p=draw(st.sampled_from([0.0, 0.2, 0.5]))),
    "maxpool": lambda draw, c, hw, name: _pool(draw, c, hw, name, "maxpool"),
    "avgpool": lambda draw, c, hw, name: _pool(draw, c, hw, name, "avgpool"),
    "upsample": _upsample, "residual": _residual, "concat": _concat, "scale": _scale, "shift_max": _shift_max,
    "prelu": lambda draw, c, hw, name: PReLU(name=name, shared=draw(st.booleans())),
    "hardtanh": lambda draw, c, hw, name: HardTanh(name=name, min_val=draw(st.sampled_from([-1.0, 0.0])),
                                                   max_val=draw(st.sampled_from([1.0, 6.0]))),
    "softmax": lambda draw, c, hw, name: Softmax(name=name, axis=draw(st.sampled_from([0, -1]))),
    "l2norm": lambda draw, c, hw, name: L2Normalize(name=name, axis=draw(st.sampled_from([0, -1]))),
    "pad": lambda draw, c, hw, name: Pad(name=name, pads=tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2)))
                                                               for _ in range(2)),
                                         value=draw(st.sampled_from([0.0, -1.0]))),
    "affine": lambda draw, c, hw, name: Affine(name=name, scale=draw(st.sampled_from([0.5, 2.0])),
                                               shift=draw(st.sampled_from([-1.0, 0.5]))),
    "layer_scale": lambda draw, c, hw, name: LayerScale(name=name),
    "slice": _slice, "pixel_shuffle": _pixel_shuffle, "graph": _graph,
    "permute": lambda draw, c, hw, name: Permute(name=name, dims=(0, 2, 1)),
    "mean": lambda draw, c, hw, name: Mean(name=name, axes=draw(st.sampled_from([(1,), (2,), (1, 2)])), keepdim=True),
}


def _fits(kind: str, c: int, hw: tuple[int, int], depth: int) -> bool:
    """Whether the input can take ``kind`` (a pool needs 2 pixels, a slice 2 channels; growing ops
    stay small; the composite ones are not nested)."""
    return not ((kind in ("maxpool", "avgpool") and min(hw) < 2)
                or (kind in ("upsample", "conv_transpose", "pixel_shuffle") and max(hw) > 8)
                or (kind in ("residual", "concat", "scale", "shift_max", "graph") and depth >= 2)
                or (kind == "slice" and c < 2))


@st.composite
def image_layer(draw, c: int, hw: tuple[int, int], name: str, depth: int, kind: str | None = None):
    """One node valid for input (c, *hw), of ``kind`` (one of ``KINDS``) or a random kind."""
    # one fixed list (hypothesis draws indices; a context-dependent list skews them), then what
    # the input cannot take falls back to a conv
    kind = kind or draw(st.sampled_from(KINDS))
    if not _fits(kind, c, hw, depth):
        kind = "conv"
    if kind not in DRAW:
        raise KeyError(f"the property strategy has no drawer for {kind!r}: add one to DRAW in tests/strategies.py")
    return DRAW[kind](draw, c, hw, name)


@st.composite
def specs(draw, max_layers: int = 6, first: str | None = None) -> ModelSpec:
    """A random valid image model: (C, H, W) input, random layers (the first of kind ``first``
    when given), then a linear head."""
    c = draw(st.integers(2 if first else 1, 6))  # a first slice needs two channels
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
    spec = ModelSpec.model_construct(name="p", input_shape=(c, *hw), layers=layers, meta=ModelMeta(family="p"))
    rows = trace(spec)
    return next(r.out_shape for r in reversed(rows) if r.depth == 0)
