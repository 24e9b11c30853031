"""MobileNet V1 (Howard et al., 2017, arXiv:1704.04861, Table 1) and
MobileNet V2 (Sandler et al., 2018, arXiv:1801.04381, Table 2)."""
from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

from ..importers import Tree, per_node
from ..spec import Dropout, Flatten, GlobalAvgPool, Identity, Linear, Parallel, Sequential
from ..spec import make_divisible, scale_channels
from .common import InputSize, check_classes, conv_bn_act, image_shape, model
from .registry import Import, Reference, register


class DepthwiseRow(BaseModel):
    """MobileNet V1 Table 1, one depthwise-separable block: output channels ``c``, dw stride ``s``."""
    model_config = ConfigDict(frozen=True)
    c: int
    s: int


MOBILENET_V1: list[DepthwiseRow] = [
    DepthwiseRow(c=64, s=1), DepthwiseRow(c=128, s=2), DepthwiseRow(c=128, s=1), DepthwiseRow(c=256, s=2),
    DepthwiseRow(c=256, s=1), DepthwiseRow(c=512, s=2),
    *[DepthwiseRow(c=512, s=1)] * 5,
    DepthwiseRow(c=1024, s=2), DepthwiseRow(c=1024, s=1),
]


def build_v1(*, name: str, num_classes: int = 1000, width: float = 1.0, input_size: InputSize = 224,
             in_channels: int = 3):
    """Stem 32@3x3/2, 13 depthwise-separable blocks (conv-BN-ReLU, no bias), global pool, FC.
    Channels are ``int(c * width)`` as in the paper's width multiplier alpha."""
    c = scale_channels(32, width, where="features.stem")
    features = [conv_bn_act("stem", c, 3, 2)]
    for i, row in enumerate(MOBILENET_V1, start=1):
        out = scale_channels(row.c, width, where=f"features.block{i}")
        features.append(Sequential(name=f"block{i}", layers=[
            conv_bn_act("dw", c, 3, row.s, groups=c), conv_bn_act("pw", out, 1)]))
        c = out
    return model(name, image_shape(in_channels, input_size), [
        Sequential(name="features", layers=features), GlobalAvgPool(name="avgpool"), Flatten(name="flatten"),
        Linear(name="fc", out_features=check_classes(num_classes))],
        family="mobilenet_v1", paper="Howard et al., MobileNets, arXiv:1704.04861, Table 1",
        source="paper Table 1", num_classes=num_classes, width=width, rounding="int")


class InvertedResidualRow(BaseModel):
    """MobileNet V2 Table 2 row: expansion ``t``, output channels ``c``, repeats ``n``, first stride ``s``."""
    model_config = ConfigDict(frozen=True)
    t: int
    c: int
    n: int
    s: int


MOBILENET_V2: list[InvertedResidualRow] = [
    InvertedResidualRow(t=1, c=16, n=1, s=1),
    InvertedResidualRow(t=6, c=24, n=2, s=2),
    InvertedResidualRow(t=6, c=32, n=3, s=2),
    InvertedResidualRow(t=6, c=64, n=4, s=2),
    InvertedResidualRow(t=6, c=96, n=3, s=1),
    InvertedResidualRow(t=6, c=160, n=3, s=2),
    InvertedResidualRow(t=6, c=320, n=1, s=1),
]


def inverted_residual(name: str, inp: int, out: int, stride: int, t: int, expand_t1: bool = False
                      ) -> Sequential | Parallel:
    """Expand 1x1 (skipped when t == 1 unless ``expand_t1``) -> depthwise 3x3 -> linear 1x1
    projection; identity shortcut when stride 1 and in == out. Hidden width ``round(inp * t)``
    (torchvision)."""
    hidden = int(round(inp * t))
    layers = [conv_bn_act("expand", hidden, 1, act="relu6")] if t != 1 or expand_t1 else []
    layers += [conv_bn_act("dw", hidden, 3, stride, groups=hidden, act="relu6"),
               conv_bn_act("project", out, 1, act=None)]
    if stride == 1 and inp == out:
        return Parallel(name=name, merge="add", branches=[Sequential(name="body", layers=layers),
                                                          Identity(name="shortcut")])
    return Sequential(name=name, layers=layers)


def build_v2(*, name: str, num_classes: int = 1000, width: float = 1.0, input_size: InputSize = 224,
             in_channels: int = 3, dropout: float = 0.2, expand_t1: bool = False):
    """torchvision rounding: channels ``make_divisible(c * width, 8)``; last conv
    ``make_divisible(1280 * max(1, width), 8)``. ``expand_t1``: the t = 1 block keeps its 1x1
    expansion (32 -> 32), as PaddleClas's MobileNetV2 does (3,505,960 parameters)."""
    c = scale_channels(32, width, "divisible8", where="features.stem")
    features: list = [conv_bn_act("stem", c, 3, 2, act="relu6")]
    for si, row in enumerate(MOBILENET_V2, start=1):
        out = scale_channels(row.c, width, "divisible8", where=f"features.stage{si}")
        blocks = []
        for i in range(row.n):
            blocks.append(inverted_residual(f"block{i}", c, out, row.s if i == 0 else 1, row.t, expand_t1))
            c = out
        features.append(Sequential(name=f"stage{si}", layers=blocks))
    last = make_divisible(1280 * max(1.0, width), 8)
    features.append(conv_bn_act("last_conv", last, 1, act="relu6"))
    return model(name, image_shape(in_channels, input_size), [
        Sequential(name="features", layers=features), GlobalAvgPool(name="avgpool"), Flatten(name="flatten"),
        Sequential(name="classifier", layers=[Dropout(name="dropout", p=dropout),
                                              Linear(name="fc", out_features=check_classes(num_classes))])],
        family="mobilenet_v2", paper="Sandler et al., MobileNetV2, arXiv:1801.04381, Table 2",
        source="torchvision.models.mobilenetv2", num_classes=num_classes, width=width, rounding="divisible8",
        **({"expand_t1": True} if expand_t1 else {}))


# --- checkpoint layouts: a library's module path for each canonical tensor (onespec.importers) ---
def _torchvision_v2(t: Tree, name: str) -> str:
    """torchvision's ``mobilenet_v2``: ``features.<i>`` over the stem, every block and the last
    conv; a block's ``conv.<j>`` (a Conv2dNormActivation's ``.0`` conv / ``.1`` BN), ``classifier.<i>``."""
    node, leaf = name.rsplit(".", 1)
    if node.startswith("classifier."):
        return f"classifier.{t.pos(node)}.{leaf}"
    blocks = [p for s in t.children["features"] for p in (t.children[s] if ".stage" in s else [s])]
    m = re.fullmatch(r"(features\.(?:stem|last_conv|stage\d+\.block\d+))(?:\.body)?\.?(\w*)\.?(conv|bn)?", node)
    block, part, kind = m.group(1), m.group(2), m.group(3)
    idx = blocks.index(block)
    if block.endswith(("stem", "last_conv")):
        return f"features.{idx}.{0 if part == 'conv' else 1}.{leaf}"
    body = block + (".body" if block + ".body" in t.paths else "")
    parts = [p.rsplit(".", 1)[1] for p in t.children[body]]
    i = parts.index(part)
    if part != "project":  # Conv2dNormActivation: .0 conv, .1 bn
        return f"features.{idx}.conv.{i}.{0 if kind == 'conv' else 1}.{leaf}"
    return f"features.{idx}.conv.{i + (0 if kind == 'conv' else 1)}.{leaf}"


def mindcv_sequential(stem_units: int, body: str, last: str, head: dict[str, str]):
    """MindCV's MobileNets: ``features`` is one SequentialCell (stem conv, bn, act; the blocks;
    the last conv, bn, act), each block a list (at ``<block><body>``) whose index counts
    activations too; an SE module is one entry (``conv_reduce`` / ``conv_expand``)."""
    @per_node
    def rule(t: Tree, node: str) -> str:
        if node in head:
            return head[node]
        se = re.fullmatch(r"(.+\.se)\.gate\.(fc[12])", node)
        if se:
            return f"{rule_node(t, se.group(1) + '.gate')}.{'conv_reduce' if se.group(2) == 'fc1' else 'conv_expand'}"
        return rule_node(t, node)

    def rule_node(t: Tree, node: str) -> str:
        kids = t.children["features"]
        top = next(k for k in kids if node == k or node.startswith(k + "."))
        if top == "features.stem":
            return f"features.{t.unit_pos(top, node)}"
        blocks = [b for k in kids[1:] for b in (t.children[k] if t.is_stage(k) else [k])]
        if top == last:
            return f"features.{stem_units + len(blocks) - 1 + t.unit_pos(top, node)}"
        block = next(b for b in blocks if node.startswith(b + "."))
        return f"features.{stem_units + blocks.index(block)}{body}.{t.unit_pos(block, node)}"
    return rule


_mindcv_v1 = mindcv_sequential(3, "", "", {"fc": "classifier"})
_mindcv_v2 = mindcv_sequential(3, ".layers", "features.last_conv", {"classifier.fc": "classifier.1"})


def _mindspore_zoo_v2(t: Tree, name: str) -> str:
    """The MindSpore model zoo's MobileNetV2 (official/cv/MobileNetV2, the garbage-classification
    fine-tuning tutorial's starting point) as its training script saves it: ``MobileNetV2Backbone``
    and ``MobileNetV2Head`` joined by a cell without prefix, so ``features.<i>`` (a ConvBNReLU's
    conv / BN at ``.features.0`` / ``.features.1``; an inverted residual's at ``.conv.<j>``) and
    ``head.1`` (the Dense after the global pool; ``has_dropout=False``, the scripts' default).
    Torchvision's indices otherwise: derived from its rule."""
    tv = _torchvision_v2(t, name)
    if tv.startswith("classifier."):
        return "head.1." + tv.rsplit(".", 1)[1]
    m = re.fullmatch(r"features\.(\d+)\.(?:conv\.(\d+)\.)?([01])\.(\w+)", tv)
    if m:  # a ConvBNReLU (torchvision's Conv2dNormActivation)
        inner = f"conv.{m.group(2)}." if m.group(2) is not None else ""
        return f"features.{m.group(1)}.{inner}features.{m.group(3)}.{m.group(4)}"
    return tv  # the projection conv / BN: features.<i>.conv.<j>


@per_node
def _paddleclas_v1(t: Tree, node: str) -> str:
    """PaddleClas ``MobileNetV1``: ``conv`` (stem), ``blocks.<i>.depthwise_conv`` /
    ``pointwise_conv`` (ConvBNLayer: ``.conv`` / ``.bn``), ``fc``."""
    if node == "fc":
        return "fc"
    m = re.fullmatch(r"features\.(?:stem|block(\d+)\.(dw|pw))\.(conv|bn)", node)
    if m.group(1) is None:
        return f"conv.{m.group(3)}"
    part = "depthwise_conv" if m.group(2) == "dw" else "pointwise_conv"
    return f"blocks.{int(m.group(1)) - 1}.{part}.{m.group(3)}"


@per_node
def _paddleclas_v2(t: Tree, node: str) -> str:
    """PaddleClas ``MobileNetV2`` (model_zoo): ``conv1`` (stem), stages ``conv2``..``conv8`` with
    ``_first_block`` and ``conv<s>_<i>`` (from 2), each ``_expand_conv`` / ``_bottleneck_conv`` /
    ``_linear_conv`` (ConvBNLayer: ``_conv`` / ``_batch_norm``), ``conv9`` (last conv), ``out``."""
    if node == "classifier.fc":
        return "out"
    leaf = {"conv": "_conv", "bn": "_batch_norm"}
    m = re.fullmatch(r"features\.(stem|last_conv)\.(conv|bn)", node)
    if m:
        return f"{'conv1' if m.group(1) == 'stem' else 'conv9'}.{leaf[m.group(2)]}"
    m = re.fullmatch(r"features\.stage(\d)\.block(\d+)(?:\.body)?\.(expand|dw|project)\.(conv|bn)", node)
    s, i = int(m.group(1)) + 1, int(m.group(2))
    part = {"expand": "_expand_conv", "dw": "_bottleneck_conv", "project": "_linear_conv"}[m.group(3)]
    return f"conv{s}.{'_first_block' if i == 0 else f'conv{s}_{i + 1}'}.{part}.{leaf[m.group(4)]}"


register("mobilenet_v1", build_v1, "MobileNet V1, width multiplier via width=1.0/0.75/0.5/0.25",
         importers={"mindcv": Import(_mindcv_v1, model="mobilenet_v1_100"),
                    "paddleclas": Import(_paddleclas_v1, model="MobileNetV1")}, references=tuple(
    Reference("MobileNet V1 paper Table 6 (params 0.1M, mult-adds 1M)", params=int(p * 1e6), params_rtol=0.05 / p,
              macs=m, macs_rtol=1 / m, overrides={"width": w})
    for w, p, m in ((1.0, 4.2, 569), (0.75, 2.6, 325), (0.5, 1.3, 149), (0.25, 0.5, 41))))
register("mobilenet_v2", build_v2, "MobileNet V2 (t, c, n, s table), torchvision rounding",
         importers={"torchvision": _torchvision_v2, "mindcv": Import(_mindcv_v2, model="mobilenet_v2_100"),
                    "mindspore_zoo": _mindspore_zoo_v2,
                    "paddleclas": Import(_paddleclas_v2, {"expand_t1": True}, "MobileNetV2")},
         references=(Reference("torchvision model docs; MobileNet V2 paper (300M MAdds)", params=3_504_872, macs=300,
                               macs_rtol=0.01),))
