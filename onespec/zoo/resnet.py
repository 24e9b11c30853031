"""ResNet (He et al., 2015, arXiv:1512.03385, Table 1), as torchvision's v1.5 (stride on the
3x3 conv of a bottleneck), and SE-ResNet (Hu et al., 2017, arXiv:1709.01507, Table 1): an SE
gate (reduction r = 16, biased FCs, ReLU then sigmoid) after each residual body's last BN,
before the addition."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..errors import OverrideError
from ..importers import Tree, per_node
from ..spec import (Act, Conv, Flatten, GlobalAvgPool, Identity, Linear, MaxPool, Parallel, Scale, Sequential,
                    make_divisible, scale_channels)
from .common import InputSize, check_classes, conv_bn_act, image_shape, model, variant
from .registry import Import, Reference, register


class ResNetStage(BaseModel):
    """A ``layerN`` of Table 1: ``n`` blocks of base width ``c`` (bottleneck output 4c)."""
    model_config = ConfigDict(frozen=True)
    c: int
    n: int


def _stages(*ns: int) -> list[ResNetStage]:
    return [ResNetStage(c=c, n=n) for c, n in zip((64, 128, 256, 512), ns)]


DEPTHS: dict[int, tuple[Literal["basic", "bottleneck"], list[ResNetStage]]] = {
    18: ("basic", _stages(2, 2, 2, 2)), 34: ("basic", _stages(3, 4, 6, 3)),
    50: ("bottleneck", _stages(3, 4, 6, 3)), 101: ("bottleneck", _stages(3, 4, 23, 3)),
    152: ("bottleneck", _stages(3, 8, 36, 3)),
}
EXPANSION = {"basic": 1, "bottleneck": 4}


def se_gate(channels: int, reduction: int, divisor: int = 1) -> Scale:
    """``divisor`` > 1: the squeeze width rounded as timm's and MindCV's SE modules do
    (``make_divisible(C / r, divisor)``: 4 -> 8 in SE-ResNet-18/34's first stage)."""
    squeeze = max(1, channels // reduction) if divisor == 1 else make_divisible(channels / reduction, divisor)
    return Scale(name="se", gate=Sequential(name="gate", layers=[
        GlobalAvgPool(name="avgpool"), Conv(name="fc1", out_channels=squeeze, kernel=1),
        Act(name="relu", fn="relu"), Conv(name="fc2", out_channels=channels, kernel=1),
        Act(name="sigmoid", fn="sigmoid")]))


def block(name: str, kind: str, inp: int, c: int, stride: int, se: int | None, se_divisor: int = 1,
          project: bool = False) -> Sequential:
    out = c * EXPANSION[kind]
    if kind == "basic":
        body = [conv_bn_act("conv1", c, 3, stride), conv_bn_act("conv2", out, 3, act=None)]
    else:
        body = [conv_bn_act("conv1", c, 1), conv_bn_act("conv2", c, 3, stride), conv_bn_act("conv3", out, 1, act=None)]
    body += [se_gate(out, se, se_divisor)] if se else []
    shortcut = (conv_bn_act("shortcut", out, 1, stride, act=None) if stride != 1 or inp != out or project
                else Identity(name="shortcut"))
    return Sequential(name=name, layers=[
        Parallel(name="residual", merge="add", branches=[Sequential(name="body", layers=body), shortcut]),
        Act(name="relu", fn="relu")])


def build(*, name: str, depth: int, se_reduction: int | None = None, num_classes: int = 1000, width: float = 1.0,
          input_size: InputSize = 224, in_channels: int = 3, se_divisor: int = 1, first_shortcut_conv: bool = False,
          maxpool_padding: int | Literal["same"] = 1):
    """``first_shortcut_conv``: a 1x1 conv + BN shortcut on the first block even where its input
    and output widths agree, as PaddleClas's ResNet-18/34 have (11,693,736 parameters for 18).
    ``maxpool_padding="same"``: MindCV's stem pool (``MaxPool2d(3, 2, pad_mode="same")``: on an even
    input its one padding row and column are at the bottom and right, so its windows are shifted
    by one pixel from torchvision's symmetric padding 1, same output size)."""
    if se_divisor != 1 and not se_reduction:
        raise OverrideError(f"{name}: se_divisor applies to SE-ResNets only")
    if isinstance(se_divisor, bool) or not isinstance(se_divisor, int) or se_divisor < 1:
        raise OverrideError(f"{name}: se_divisor must be a positive int, got {se_divisor!r}")
    kind, stages = DEPTHS[depth]
    c = scale_channels(64, width, where="stem")
    layers: list = [conv_bn_act("stem", c, 7, 2), MaxPool(name="maxpool", kernel=3, stride=2, padding=maxpool_padding)]
    for si, st in enumerate(stages, start=1):
        base = scale_channels(st.c, width, where=f"layer{si}")
        blocks = []
        for i in range(st.n):
            blocks.append(block(f"block{i}", kind, c, base, 2 if i == 0 and si > 1 else 1, se_reduction, se_divisor,
                                project=first_shortcut_conv and si == 1 and i == 0))
            c = base * EXPANSION[kind]
        layers.append(Sequential(name=f"layer{si}", layers=blocks))
    layers += [GlobalAvgPool(name="avgpool"), Flatten(name="flatten"),
               Linear(name="fc", out_features=check_classes(num_classes))]
    paper = "He et al., Deep Residual Learning, arXiv:1512.03385, Table 1"
    if se_reduction:
        paper += f"; Hu et al., Squeeze-and-Excitation Networks, arXiv:1709.01507 (r={se_reduction})"
    return model(name, image_shape(in_channels, input_size), layers, family="resnet", paper=paper,
                 source="torchvision.models.resnet (v1.5)", num_classes=num_classes, depth=depth,
                 se_reduction=se_reduction, width=width, rounding="int",
                 **variant({"se_divisor": 1, "first_shortcut_conv": False, "maxpool_padding": 1},
                           se_divisor=se_divisor, first_shortcut_conv=first_shortcut_conv,
                           maxpool_padding=maxpool_padding))


def _se_params(depth: int, r: int = 16) -> int:
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[depth]
    widths = (64, 128, 256, 512) if depth < 50 else (256, 512, 1024, 2048)
    return _TV_PARAMS[depth] + sum(n * (2 * c * c // r + c // r + c) for n, c in zip(blocks, widths))


_TV_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}


# --- checkpoint layouts: a library's module path for each canonical tensor (onespec.importers) ---
def _torchvision(t: Tree, name: str) -> str:
    """torchvision's ``resnet*`` (also timm's, and timm's ``seresnet*`` with ``se.fc1`` /
    ``se.fc2``): ``conv1`` / ``bn1``, ``layer<s>.<i>.conv<k>`` / ``bn<k>``, ``downsample.0`` / ``.1``, ``fc``."""
    node, leaf = name.rsplit(".", 1)
    if node in ("stem.conv", "stem.bn"):
        return f"{'conv1' if node == 'stem.conv' else 'bn1'}.{leaf}"
    if node == "fc":
        return name
    m = re.fullmatch(r"(layer\d)\.block(\d+)\.residual\.(?:body\.conv(\d)\.(conv|bn)|shortcut\.(conv|bn)|"
                     r"body\.se\.gate\.(fc[12]))", node)
    if m.group(6):  # SE-ResNet (timm): layerN.i.se.fc1 / fc2
        return f"{m.group(1)}.{m.group(2)}.se.{m.group(6)}.{leaf}"
    if m.group(3):
        return f"{m.group(1)}.{m.group(2)}.{m.group(4)}{m.group(3)}.{leaf}"
    return f"{m.group(1)}.{m.group(2)}.downsample.{0 if m.group(5) == 'conv' else 1}.{leaf}"


def _mindcv(t: Tree, name: str) -> str:
    """MindCV ``resnet*`` and ``seresnet*``: torchvision's / timm's names but the shortcut
    (``down_sample`` in ResNet, ``downsample`` in SENet), SENet's stem (``layer0.0`` / ``layer0.1``)
    and SE module (``se_module.conv_reduce`` / ``conv_expand``, Dense layers), ``classifier``."""
    n = _torchvision(t, name)
    n = re.sub(r"^fc\.", "classifier.", n)
    n = re.sub(r"\.se\.fc([12])\.", lambda m: f".se_module.conv_{'reduce' if m.group(1) == '1' else 'expand'}.", n)
    if any(p.endswith(".se") for p in t.paths):
        return re.sub(r"^(conv1|bn1)\.", lambda m: f"layer0.{0 if m.group(1) == 'conv1' else 1}.", n)
    return n.replace(".downsample.", ".down_sample.")


@per_node
def _paddleclas(t: Tree, node: str) -> str:
    """PaddleClas ``ResNet*`` (legendary_models): ``stem.0``, ``blocks.<i>`` numbered across stages,
    ``conv0..2`` and ``short`` (each a ConvBNLayer: ``.conv`` / ``.bn``), ``fc``."""
    if node in ("stem.conv", "stem.bn"):
        return f"stem.0.{node[5:]}"
    if node == "fc":
        return "fc"
    m = re.fullmatch(r"(layer\d)\.(block\d+)\.residual\.(?:body\.conv(\d)|shortcut)\.(conv|bn)", node)
    part = "short" if m.group(3) is None else f"conv{int(m.group(3)) - 1}"
    i = t.across(r"layer\d", f"{m.group(1)}.{m.group(2)}")
    return f"blocks.{i}.{part}.{m.group(4)}"


for _d in DEPTHS:
    register(f"resnet{_d}", build, f"ResNet-{_d}", depth=_d,
             importers={"torchvision": _torchvision, "timm": _torchvision,
                        "paddleclas": Import(_paddleclas, {"first_shortcut_conv": True} if _d < 50 else {},
                                             f"ResNet{_d}"),
                        "mindcv": Import(_mindcv, {"maxpool_padding": "same"})},
             references=(Reference("torchvision model docs (ResNet v1.5)", params=_TV_PARAMS[_d]),))
    register(f"se_resnet{_d}", build, f"SE-ResNet-{_d} (r=16)", depth=_d, se_reduction=16,
             importers={"timm": Import(_torchvision, {"se_divisor": 8}, f"seresnet{_d}"),
                        "mindcv": Import(_mindcv, {"se_divisor": 8, "maxpool_padding": "same"},
                                         f"seresnet{_d}")},
             references=(Reference("torchvision ResNet count + one SE block (2C^2/r + C/r + C) per residual "
                                   "block, SE paper Sec. 3", params=_se_params(_d)),)
             + ((Reference("SE paper Table 2 (28.1M)", params=28_100_000, params_rtol=0.002),) if _d == 50 else ()))
