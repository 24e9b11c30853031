"""MicroNet M0-M3 (Li et al., 2021, arXiv:2108.05894): micro-factorized convolutions and
Dynamic Shift-Max.

The configuration tables are the official reference implementation's (row fields
``s, n, c, ks, c1, c2, g1, g2, c3, g3, g4, y1, y2, y3, r``); the block structure is the
PaddleClas port (``DYMicroBlock`` in ``ppcls/arch/backbone/model_zoo/micronet.py``), so a PaddleClas-trained ``.pdparams`` maps onto
it node for node. In particular: Paddle's ``nn.Hardsigmoid`` slope 0.1666667 in the shift-max
gates, BN eps 1e-5, the SE-style squeeze ``make_divisible(C // (8 r), 4)`` (at least 4), and
a head whose logits pass through Linear -> BN1d -> h-swish. The stem's max-group pooling
applies only when ``g1 * g2 == 2 * stem_ch``, which none of M0-M3 satisfies (they use ReLU6).
"""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from ..errors import OverrideError
from ..importers import Tree, per_node
from ..spec import (Act, BatchNorm, ChannelShuffle, Conv, Dropout, Flatten, GlobalAvgPool, HardSigmoid, Identity,
                    Linear, Parallel, Sequential, ShiftMax, make_divisible)
from .common import InputSize, check_classes, image_shape, model
from .registry import Import, Reference, register

PADDLE_HARDSIGMOID_SLOPE = 0.1666667  # paddle.nn.Hardsigmoid default, not exactly 1/6


class MicroRow(BaseModel):
    """Official table row: stride ``s``, repeats ``n``, output ``c``, kernel ``ks``, spatial
    expansions ``c1, c2``, first group pair ``g1, g2`` (g1 = 0: depthwise-first block),
    ``c3`` and pointwise groups ``g3, g4`` (g4 = 0: last block), dynamic activations
    ``y1, y2, y3`` (0 = ReLU6/none, 1 = one fusion, 2 = two fusions), reduction ratio ``r``."""
    model_config = ConfigDict(frozen=True)
    s: int
    n: int
    c: int
    ks: int
    c1: int
    c2: int
    g1: int
    g2: int
    c3: int
    g3: int
    g4: int
    y1: int
    y2: int
    y3: int
    r: int


class MicroVariant(BaseModel):
    model_config = ConfigDict(frozen=True)
    stem_ch: int
    stem_groups: tuple[int, int]
    out_ch: int
    dropout: float
    init_a: tuple[float, float]
    init_b: tuple[float, float]
    rows: list[MicroRow]


FIELDS = list(MicroRow.model_fields)


def _rows(*rows) -> list[MicroRow]:
    return [MicroRow(**dict(zip(FIELDS, r))) for r in rows]


VARIANTS = {
    "m0": MicroVariant(stem_ch=4, stem_groups=(2, 2), out_ch=640, dropout=0.05, init_a=(1, 1), init_b=(0, 0), rows=_rows(
        [2, 1, 8, 3, 2, 2, 0, 4, 8, 2, 2, 2, 0, 1, 1], [2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 2, 1, 1],
        [2, 1, 16, 5, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1], [1, 1, 32, 5, 1, 4, 4, 4, 32, 4, 4, 2, 2, 1, 1],
        [2, 1, 64, 5, 1, 4, 8, 8, 64, 8, 8, 2, 2, 1, 1], [1, 1, 96, 3, 1, 4, 8, 8, 96, 8, 8, 2, 2, 1, 2],
        [1, 1, 384, 3, 1, 4, 12, 12, 0, 0, 0, 2, 2, 1, 2])),
    "m1": MicroVariant(stem_ch=6, stem_groups=(3, 2), out_ch=960, dropout=0.05, init_a=(1, 1), init_b=(0, 0), rows=_rows(
        [2, 1, 8, 3, 2, 2, 0, 6, 8, 2, 2, 2, 0, 1, 1], [2, 1, 16, 3, 2, 2, 0, 8, 16, 4, 4, 2, 2, 1, 1],
        [2, 1, 16, 5, 2, 2, 0, 16, 16, 4, 4, 2, 2, 1, 1], [1, 1, 32, 5, 1, 6, 4, 4, 32, 4, 4, 2, 2, 1, 1],
        [2, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 1], [1, 1, 96, 3, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2],
        [1, 1, 576, 3, 1, 6, 12, 12, 0, 0, 0, 2, 2, 1, 2])),
    "m2": MicroVariant(stem_ch=8, stem_groups=(4, 2), out_ch=1024, dropout=0.1, init_a=(1, 1), init_b=(0, 0), rows=_rows(
        [2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 0, 1, 1], [2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1],
        [1, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 2, 2, 1, 1], [2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 2, 2, 1, 1],
        [1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 2, 2, 1, 2], [1, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 2],
        [2, 1, 96, 5, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2], [1, 1, 128, 3, 1, 6, 12, 12, 128, 8, 8, 2, 2, 1, 2],
        [1, 1, 768, 3, 1, 6, 16, 16, 0, 0, 0, 2, 2, 1, 2])),
    "m3": MicroVariant(stem_ch=12, stem_groups=(4, 3), out_ch=1024, dropout=0.1, init_a=(1.0, 0.5), init_b=(0.0, 0.5),
                       rows=_rows(
        [2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 0, 2, 0, 1], [2, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 0, 2, 0, 1],
        [1, 1, 24, 3, 2, 2, 0, 24, 24, 4, 4, 0, 2, 0, 1], [2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 0, 2, 0, 1],
        [1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 0, 2, 0, 2], [1, 1, 64, 5, 1, 6, 8, 8, 48, 8, 8, 0, 2, 0, 2],
        [1, 1, 80, 5, 1, 6, 8, 8, 80, 8, 8, 0, 2, 0, 2], [1, 1, 80, 5, 1, 6, 10, 10, 80, 8, 8, 0, 2, 0, 2],
        [2, 1, 120, 5, 1, 6, 10, 10, 120, 10, 10, 0, 2, 0, 2], [1, 1, 120, 5, 1, 6, 12, 12, 120, 10, 10, 0, 2, 0, 2],
        [1, 1, 144, 3, 1, 6, 12, 12, 144, 12, 12, 0, 2, 0, 2], [1, 1, 864, 3, 1, 6, 12, 12, 0, 0, 0, 0, 2, 0, 2])),
}
ACT_MAX, REDUCTION, INIT_AB3 = 2.0, 8, (1.0, 0.0)


def group_conv(name: str, out: int, groups: int) -> Sequential:
    return Sequential(name=name, layers=[Conv(name="conv", out_channels=out, kernel=1, groups=groups, bias=False),
                                         BatchNorm(name="bn")])


def spatial_sep(name: str, inp: int, e1: int, e2: int, k: int, s: int, first_groups: int) -> Sequential:
    """k x 1 then 1 x k convolutions, each followed by BN (micro-factorized depthwise conv)."""
    return Sequential(name=name, layers=[
        Conv(name="conv1", out_channels=inp * e1, kernel=(k, 1), stride=(s, 1), padding=(k // 2, 0),
             groups=first_groups, bias=False), BatchNorm(name="bn1"),
        Conv(name="conv2", out_channels=inp * e1 * e2, kernel=(1, k), stride=(1, s), padding=(0, k // 2),
             groups=inp * e1, bias=False), BatchNorm(name="bn2")])


def dy_shift_max(name: str, c: int, fusions: int, init_a, init_b, reduction: float, g: tuple[int, int],
                 expansion: bool) -> ShiftMax:
    squeeze = max(4, make_divisible(c // reduction, 4))
    groups = g[1]
    if groups != 1 and expansion:
        groups = c // groups
    return ShiftMax(name=name, groups=groups, fusions=fusions, act_max=ACT_MAX, init_a=tuple(init_a),
                    init_b=tuple(init_b), gate=Sequential(name="gate", layers=[
                        GlobalAvgPool(name="avgpool"), Flatten(name="flatten"),
                        Linear(name="fc1", out_features=squeeze), Act(name="relu", fn="relu"),
                        Linear(name="fc2", out_features=2 * fusions * c),
                        HardSigmoid(name="hardsigmoid", slope=PADDLE_HARDSIGMOID_SLOPE)]))


def _dyn_or_relu6(name: str, y: int, c: int, init_a, init_b, reduction, g, expansion=False):
    if y > 0:
        return dy_shift_max(name, c, 2 if y == 2 else 1, init_a, init_b, reduction, g, expansion)
    return Act(name=name, fn="relu6")


def _shuffle(name: str, groups: int):
    return [ChannelShuffle(name=name, groups=groups)] if groups > 1 else []


def micro_block(name: str, inp: int, row: MicroRow, stride: int, init_a, init_b):
    """PaddleClas ``DYMicroBlock``; three layouts chosen by the row."""
    red = REDUCTION * row.r
    h2 = inp * row.c1 * row.c2
    tail_a, tail_b = (INIT_AB3[0], 0.0), (INIT_AB3[1], 0.0)
    if row.g1 == 0:  # depthwise-first block (Micro-Block-A)
        layers = [spatial_sep("spatial", inp, row.c1, row.c2, row.ks, stride, inp),
                  _dyn_or_relu6("act1", row.y2, h2, init_a, init_b, red, (row.g1, row.g2)),
                  *_shuffle("shuffle1", row.g2), *(_shuffle("shuffle2", h2 // 2) if row.y2 else []),
                  group_conv("pw", row.c, row.g3)]
        layers += [dy_shift_max("act2", row.c, 1, tail_a, tail_b, red // 2, (row.g3, row.g4), False)] if row.y3 else []
        layers += _shuffle("shuffle3", row.g4)
        layers += _shuffle("shuffle4", row.c // 2) if row.c % 2 == 0 and row.y3 else []
        out = row.c
    elif row.g4 == 0:  # last block: grouped pointwise expansion only (Micro-Block-C)
        layers = [group_conv("pw", h2, row.g1)]
        layers += [dy_shift_max("act1", h2, 1, tail_a, tail_b, red, (row.g1, row.g2), False)] if row.y3 else []
        out = h2
    else:  # pointwise - depthwise - pointwise (Micro-Block-B)
        layers = [group_conv("pw1", h2, row.g1),
                  _dyn_or_relu6("act1", row.y1, h2, init_a, init_b, red, (row.g1, row.g2)),
                  *_shuffle("shuffle1", row.g2),
                  spatial_sep("spatial", h2, 1, 1, row.ks, stride, h2),
                  _dyn_or_relu6("act2", row.y2, h2, init_a, init_b, red, (row.g1, row.g2), expansion=True)]
        if row.y1 and row.y2:
            layers += _shuffle("shuffle2", h2 // 4)
        elif row.y1 or row.y2:
            layers += _shuffle("shuffle2", h2 // 2)
        layers.append(group_conv("pw2", row.c, row.g3))
        if row.y3:
            layers.append(dy_shift_max("act3", row.c, 1, tail_a, tail_b, red // 2 if row.c < h2 else red,
                                       (row.g3, row.g4), False))
        layers += _shuffle("shuffle3", row.g4)
        layers += _shuffle("shuffle4", row.c // 2) if row.y3 else []
        out = row.c
    body = Sequential(name=name if not (stride == 1 and inp == out) else "body", layers=layers)
    if stride == 1 and inp == out:
        return Parallel(name=name, merge="add", branches=[body, Identity(name="shortcut")]), out
    return body, out


def build(*, name: str, variant: str, num_classes: int = 1000, input_size: InputSize = 224, in_channels: int = 3,
          dropout: float | None = None):
    v = VARIANTS[variant]
    shape = image_shape(in_channels, input_size)
    if shape[1] % 32 or shape[2] % 32:
        raise OverrideError(f"{name}: input_size {shape[1:]} must be divisible by 32 (five stride-2 stages; the "
                            "reference implementation asserts it)")
    g1, g2 = v.stem_groups
    if g1 * g2 == 2 * v.stem_ch:  # pragma: no cover - no M0-M3 variant takes this path
        raise OverrideError(f"{name}: stem max-group pooling is not modelled")
    stem = Sequential(name="stem", layers=[
        Conv(name="conv1", out_channels=g1, kernel=(3, 1), stride=(2, 1), padding=(1, 0), bias=False),
        BatchNorm(name="bn1"),
        Conv(name="conv2", out_channels=g1 * g2, kernel=(1, 3), stride=(1, 2), padding=(0, 1), groups=g1, bias=False),
        BatchNorm(name="bn2"), *_shuffle("shuffle", g1), Act(name="relu6", fn="relu6")])
    features: list = [stem]
    c = g1 * g2
    i = 1
    for row in v.rows:
        for j in range(row.n):
            block, c = micro_block(f"block{i}", c, row, row.s if j == 0 else 1, v.init_a, v.init_b)
            features.append(block)
            i += 1

    def swish_linear(nm: str, out: int) -> Sequential:
        return Sequential(name=nm, layers=[Linear(name="linear", out_features=out), BatchNorm(name="bn"),
                                           Act(name="hardswish", fn="hardswish")])
    return model(name, shape, [
        Sequential(name="features", layers=features),
        Sequential(name="head", layers=[Act(name="relu6", fn="relu6"), GlobalAvgPool(name="avgpool"),
                                        Act(name="hardswish", fn="hardswish"), Flatten(name="flatten")]),
        Sequential(name="classifier", layers=[
            swish_linear("fc1", v.out_ch), Dropout(name="dropout", p=v.dropout if dropout is None else dropout),
            swish_linear("fc2", check_classes(num_classes))])],
        family="micronet", paper="Li et al., MicroNet, arXiv:2108.05894",
        source="official tables; block structure of PaddleClas MicroNet", num_classes=num_classes,
        variant=variant)


# --- checkpoint layouts: a library's module path for each canonical tensor (onespec.importers) ---
# PaddleClas DYMicroBlock's ``layers`` indices by block kind (PaddleClas's micronet.py): depthwise
# first (spatial, act, shuffle, shuffle, pw, act, ...), pointwise only (pw, act), pointwise-depthwise-pointwise
_PADDLECLAS_LAYERS = {"spatial": {"spatial": 0, "act1": 1, "pw": 4, "act2": 5},
                      "pw": {"pw": 0, "act1": 1},
                      "pw1": {"pw1": 0, "act1": 1, "spatial": 3, "act2": 5, "pw2": 7, "act3": 8}}


@per_node
def _paddleclas(t: Tree, node: str) -> str:
    """PaddleClas ``MicroNet_M*``: ``features.0.stem.0.conv.<k>`` (stem), ``features.<i>.layers.<k>``
    (``_PADDLECLAS_LAYERS``; a conv unit's ``conv.<k>``, a dynamic shift-max's ``fc.0`` / ``fc.2``),
    ``classifier.0`` / ``classifier.2`` (SwishLinear: ``linear.0`` Linear, ``linear.1`` BN)."""
    m = re.fullmatch(r"classifier\.(fc[12])\.(linear|bn)", node)
    if m:
        return f"classifier.{0 if m.group(1) == 'fc1' else 2}.linear.{0 if m.group(2) == 'linear' else 1}"
    if node.startswith("features.stem."):
        return f"features.0.stem.0.conv.{t.leaf_pos('features.stem', node)}"
    m = re.fullmatch(r"features\.block(\d+)(\.body)?\.(\w+)\.(.+)", node)  # .body: a residual block
    block, part, rest = f"features.block{m.group(1)}{m.group(2) or ''}", m.group(3), m.group(4)
    kids = [k.rsplit(".", 1)[1] for k in t.children[block]]
    kind = "pw1" if "pw1" in kids else "spatial" if "spatial" in kids else "pw"
    prefix = f"features.{m.group(1)}.layers.{_PADDLECLAS_LAYERS[kind][part]}"
    if rest.startswith("gate."):
        return f"{prefix}.fc.{0 if rest == 'gate.fc1' else 2}"
    return f"{prefix}.conv.{t.leaf_pos(f'{block}.{part}', node)}"


for _v, _p, _m in (("m0", 1.0, 4), ("m1", 1.8, 6), ("m2", 2.4, 12), ("m3", 2.6, 21)):
    register(f"micronet_{_v}", build, f"MicroNet {_v.upper()} (dynamic shift-max, micro-factorized convs)",
             variant=_v, importers={"paddleclas": Import(_paddleclas, model=f"MicroNet_{_v.upper()}")},
             references=(Reference("MicroNet paper Table 2 (params 0.1M, MAdds 1M)", params=int(_p * 1e6),
                                               params_rtol=0.05 / _p, macs=_m, macs_rtol=0.8 / _m),))
