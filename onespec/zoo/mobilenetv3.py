"""MobileNet V3 (Howard et al., 2019, arXiv:1905.02244, Tables 1 and 2), structured as
torchvision's mobilenet_v3_large / _small: BN eps 1e-3 momentum 0.01, SE squeeze
``make_divisible(exp // 4, 8)`` with biased 1x1 convs, ReLU then hardsigmoid (x+3)/6."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..importers import Tree, per_node
from ..spec import (Act, Conv, Dropout, Flatten, GlobalAvgPool, HardSigmoid, Identity, Linear, Parallel, Scale,
                    Sequential, make_divisible, scale_channels)
from ..errors import OverrideError
from .common import InputSize, check_classes, conv_bn_act, image_shape, model, variant
from .mobilenet import mindcv_sequential
from .registry import Import, Reference, register

BN = {"eps": 1e-3, "momentum": 0.01}


class V3Row(BaseModel):
    """Table 1/2 row: kernel ``k``, expansion size ``exp``, output ``c``, squeeze-excite ``se``,
    nonlinearity ``act`` (RE = ReLU, HS = h-swish), stride ``s``."""
    model_config = ConfigDict(frozen=True)
    k: int
    exp: int
    c: int
    se: bool
    act: Literal["RE", "HS"]
    s: int


def _rows(*rows) -> list[V3Row]:
    return [V3Row(k=k, exp=e, c=c, se=se, act=a, s=s) for k, e, c, se, a, s in rows]


LARGE = _rows(
    (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1),
)
SMALL = _rows(
    (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
)
TABLES = {"large": (LARGE, 1280), "small": (SMALL, 1024)}
ACT = {"RE": "relu", "HS": "hardswish"}


def squeeze_excite(channels: int, *, gate: str = "hardsigmoid", squeeze: int | None = None,
                   slope: float = 1.0 / 6.0) -> Scale:
    """SE (Hu et al.): global pool -> 1x1 conv (bias) -> ReLU -> 1x1 conv (bias) -> gate; x * gate."""
    sq = make_divisible(channels // 4, 8) if squeeze is None else squeeze
    last = HardSigmoid(name="hardsigmoid", slope=slope) if gate == "hardsigmoid" else Act(name=gate, fn=gate)
    return Scale(name="se", gate=Sequential(name="gate", layers=[
        GlobalAvgPool(name="avgpool"), Conv(name="fc1", out_channels=sq, kernel=1), Act(name="relu", fn="relu"),
        Conv(name="fc2", out_channels=channels, kernel=1), last]))


def v3_block(name: str, inp: int, row: V3Row, width: float, bn: dict = BN, dw_padding=None,
             expand_always: bool = False, se_divisor: int = 8, se_slope: float = 1.0 / 6.0):
    exp = scale_channels(row.exp, width, "divisible8")
    out = scale_channels(row.c, width, "divisible8")
    act = ACT[row.act]
    layers = [conv_bn_act("expand", exp, 1, act=act, **bn)] if exp != inp or expand_always else []
    layers.append(conv_bn_act("dw", exp, row.k, row.s, groups=exp, act=act, padding=dw_padding, **bn))
    layers += [squeeze_excite(exp, squeeze=make_divisible(exp // 4, se_divisor), slope=se_slope)] if row.se else []
    layers.append(conv_bn_act("project", out, 1, act=None, **bn))
    if row.s == 1 and inp == out:
        return Parallel(name=name, merge="add", branches=[Sequential(name="body", layers=layers),
                                                          Identity(name="shortcut")]), out
    return Sequential(name=name, layers=layers), out


_DEFAULTS = {"bn_eps": 1e-3, "dw_padding": None, "expand_always": False, "se_divisor": 8, "se_slope": 1.0 / 6.0,
             "head_bias": True, "last_channel": None}


def build(*, name: str, size: Literal["large", "small"], num_classes: int = 1000, width: float = 1.0,
          input_size: InputSize = 224, in_channels: int = 3, dropout: float = 0.2, bn_eps: float = 1e-3,
          dw_padding: Literal["same"] | None = None, expand_always: bool = False, se_divisor: int = 8,
          se_slope: float = 1.0 / 6.0, head_bias: bool = True, last_channel: int | None = None):
    """``bn_eps=1e-5``: timm's mobilenetv3_*_100 (PyTorch's default BatchNorm eps), MindCV's
    (MindSpore's default) and PaddleClas's. ``dw_padding="same"``: MindCV's depthwise convs
    (``pad_mode="same"``: a stride-2 window's extra padding at the bottom/right only).
    PaddleClas's ``MobileNetV3_*_x1_0``: ``expand_always`` (an expansion conv even where it keeps
    the width: large's first block), ``se_divisor=1`` (squeeze C // 4, not rounded to 8),
    ``se_slope=0.2`` (Paddle's hardsigmoid), ``head_bias=False`` (its first head layer is a 1x1
    conv without bias), and for small ``last_channel=1280`` (the paper's 1024 in Table 2):
    5,480,206 / 2,939,958 parameters (large / small)."""
    if isinstance(bn_eps, bool) or not isinstance(bn_eps, (int, float)) or not 0 < bn_eps < 1:
        raise OverrideError(f"{name}: bn_eps must be in (0, 1), got {bn_eps!r}")
    if isinstance(se_divisor, bool) or not isinstance(se_divisor, int) or se_divisor < 1:
        raise OverrideError(f"{name}: se_divisor must be a positive int, got {se_divisor!r}")
    bn = {**BN, "eps": float(bn_eps)}
    rows, table_last = TABLES[size]
    c = scale_channels(16, width, "divisible8", where="features.stem")
    features: list = [conv_bn_act("stem", c, 3, 2, act="hardswish", **bn)]
    for i, row in enumerate(rows, start=1):
        block, c = v3_block(f"block{i}", c, row, width, bn, dw_padding, expand_always, se_divisor, float(se_slope))
        features.append(block)
    features.append(conv_bn_act("last_conv", 6 * c, 1, act="hardswish", **bn))
    hidden = scale_channels(table_last if last_channel is None else last_channel, width, "divisible8")
    return model(name, image_shape(in_channels, input_size), [
        Sequential(name="features", layers=features), GlobalAvgPool(name="avgpool"), Flatten(name="flatten"),
        Sequential(name="classifier", layers=[
            Linear(name="fc1", out_features=hidden, bias=head_bias), Act(name="hardswish", fn="hardswish"),
            Dropout(name="dropout", p=dropout), Linear(name="fc2", out_features=check_classes(num_classes))])],
        family="mobilenet_v3", paper=f"Howard et al., Searching for MobileNetV3, arXiv:1905.02244, "
                                     f"Table {1 if size == 'large' else 2}",
        source="torchvision.models.mobilenetv3", num_classes=num_classes, size=size, width=width,
        rounding="divisible8", **variant(_DEFAULTS, bn_eps=float(bn_eps), dw_padding=dw_padding,
                                         expand_always=expand_always, se_divisor=se_divisor,
                                         se_slope=float(se_slope), head_bias=head_bias,
                                         last_channel=None if last_channel == table_last else last_channel))

# PaddleClas's MobileNetV3_*_x1_0 (its Dropout(mode="downscale_in_infer") scales by 0.8 at
# inference: folded into the last Linear on import)
_PADDLECLAS = {"bn_eps": 1e-5, "expand_always": True, "se_divisor": 1, "se_slope": 0.2, "head_bias": False}


# --- checkpoint layouts: a library's module path for each canonical tensor (onespec.importers) ---
def _torchvision(t: Tree, name: str) -> str:
    """torchvision's ``mobilenet_v3_*``: ``features.<i>``, a block's ``block.<j>`` (conv / BN at
    ``.0`` / ``.1``, SE ``fc1`` / ``fc2``), ``classifier.<i>``."""
    node, leaf = name.rsplit(".", 1)
    if node.startswith("classifier."):
        return f"classifier.{t.pos(node)}.{leaf}"
    m = re.fullmatch(r"features\.(\w+)(?:\.body)?(?:\.(\w+))?(?:\.gate)?\.(conv|bn|fc1|fc2)", node)
    block, part, kind = f"features.{m.group(1)}", m.group(2), m.group(3)
    idx = t.pos(block)
    if part is None:  # stem / last_conv
        return f"features.{idx}.{0 if kind == 'conv' else 1}.{leaf}"
    body = block + (".body" if block + ".body" in t.paths else "")
    i = [p.rsplit(".", 1)[1] for p in t.children[body]].index(part)
    if part == "se":
        return f"features.{idx}.block.{i}.{kind}.{leaf}"
    return f"features.{idx}.block.{i}.{0 if kind == 'conv' else 1}.{leaf}"


@per_node
def _timm(t: Tree, node: str) -> str:
    """timm's ``mobilenetv3_*_100``: ``conv_stem``/``bn1``, ``blocks.<stage>.<i>`` (a stage is a run
    of blocks with one output width: its arch-def rows), ``conv_head`` (a biased 1x1 conv where
    torchvision has ``classifier.0``), ``classifier``."""
    if node in ("features.stem.conv", "features.stem.bn"):
        return "conv_stem" if node.endswith("conv") else "bn1"
    if node == "classifier.fc1":
        return "conv_head"
    if node == "classifier.fc2":
        return "classifier"
    blocks = t.children["features"][1:]
    stages: list[list[str]] = []
    for b in blocks:
        if not stages or t.out_channels(b) != t.out_channels(stages[-1][-1]):
            stages.append([])
        stages[-1].append(b)
    block = next(b for b in blocks if node == b or node.startswith(b + "."))
    s = next(i for i, st in enumerate(stages) if block in st)
    prefix = f"blocks.{s}.{stages[s].index(block)}"
    if block.endswith("last_conv"):
        return f"{prefix}.{'conv' if node.endswith('conv') else 'bn1'}"
    m = re.fullmatch(r"(?:\.body)?\.(expand|dw|project|se\.gate)\.(conv|bn|fc1|fc2)", node[len(block):])
    part, kind = m.group(1), m.group(2)
    if part == "se.gate":
        return f"{prefix}.se.{'conv_reduce' if kind == 'fc1' else 'conv_expand'}"
    expands = t.has(f"{block}.body.expand") or t.has(f"{block}.expand")
    names = ({"expand": ("conv_pw", "bn1"), "dw": ("conv_dw", "bn2"), "project": ("conv_pwl", "bn3")} if expands
             else {"dw": ("conv_dw", "bn1"), "project": ("conv_pw", "bn2")})  # DepthwiseSeparableConv
    return f"{prefix}.{names[part][0 if kind == 'conv' else 1]}"


_mindcv = mindcv_sequential(3, ".layers", "features.last_conv",
                           {"classifier.fc1": "classifier.0", "classifier.fc2": "classifier.3"})


@per_node
def _paddleclas(t: Tree, node: str) -> str:
    """PaddleClas ``MobileNetV3_*`` (legendary_models): ``conv`` (stem), ``blocks.<i>`` with
    ``expand_conv`` / ``bottleneck_conv`` / ``linear_conv`` (ConvBNLayer: ``.conv`` / ``.bn``) and
    ``mid_se.conv1`` / ``conv2``, ``last_second_conv``, ``last_conv`` (a 1x1 conv for the first head
    Linear), ``fc``."""
    head = {"classifier.fc1": "last_conv", "classifier.fc2": "fc"}
    if node in head:
        return head[node]
    m = re.fullmatch(r"features\.(stem|last_conv)\.(conv|bn)", node)
    if m:
        return f"{'conv' if m.group(1) == 'stem' else 'last_second_conv'}.{m.group(2)}"
    m = re.fullmatch(r"features\.block(\d+)(?:\.body)?\.(expand|dw|project|se\.gate)\.(conv|bn|fc1|fc2)", node)
    part = {"expand": "expand_conv", "dw": "bottleneck_conv", "project": "linear_conv", "se.gate": "mid_se"}[m.group(2)]
    leaf = {"fc1": "conv1", "fc2": "conv2"}.get(m.group(3), m.group(3))
    return f"blocks.{int(m.group(1)) - 1}.{part}.{leaf}"


register("mobilenet_v3_large", build, "MobileNet V3 Large (k, exp, c, se, act, s table)", size="large",
         importers={"torchvision": _torchvision,
                    "timm": Import(_timm, {"bn_eps": 1e-5}, "mobilenetv3_large_100"),
                    "mindcv": Import(_mindcv, {"bn_eps": 1e-5, "dw_padding": "same"},
                                     "mobilenet_v3_large_100"),
                    "paddleclas": Import(_paddleclas, _PADDLECLAS, "MobileNetV3_large_x1_0",
                                         {"classifier.fc2.weight": 0.8})},
         references=(Reference("torchvision model docs; MobileNet V3 paper Table 3 (219M MAdds)", params=5_483_032,
                               macs=219, macs_rtol=0.02),
                     Reference("PaddleClas MobileNetV3_large_x1_0 (parameter count of its network)", params=5_480_206,
                               overrides=_PADDLECLAS)))
register("mobilenet_v3_small", build, "MobileNet V3 Small (k, exp, c, se, act, s table)", size="small",
         importers={"torchvision": _torchvision,
                    "timm": Import(_timm, {"bn_eps": 1e-5}, "mobilenetv3_small_100"),
                    "mindcv": Import(_mindcv, {"bn_eps": 1e-5, "dw_padding": "same"},
                                     "mobilenet_v3_small_100"),
                    "paddleclas": Import(_paddleclas, {**_PADDLECLAS, "last_channel": 1280},
                                         "MobileNetV3_small_x1_0", {"classifier.fc2.weight": 0.8})},
         references=(Reference("torchvision model docs; MobileNet V3 paper Table 3 (56M MAdds)", params=2_542_856,
                               macs=56, macs_rtol=0.02),
                     Reference("PaddleClas MobileNetV3_small_x1_0 (parameter count of its network)", params=2_939_958,
                               overrides={**_PADDLECLAS, "last_channel": 1280})))
