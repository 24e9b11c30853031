"""ShuffleNet V1 (Zhang et al., 2017, arXiv:1707.01083, Table 1) and
ShuffleNet V2 (Ma et al., 2018, arXiv:1807.11164, Table 5; structure as torchvision)."""
from __future__ import annotations

import re
from typing import Literal


from ..errors import OverrideError
from ..importers import Tree, per_node
from ..spec import (Act, AvgPool, ChannelShuffle, Flatten, GlobalAvgPool, Identity, Linear, MaxPool, Parallel,
                    Sequential, scale_channels)
from .common import InputSize, check_classes, conv_bn_act, image_shape, model, variant
from .registry import Import, Reference, register


# ---------------------------------------------------------------------------------- V2
V2_CHANNELS = {  # Table 5: stage2, stage3, stage4, conv5
    "x0_5": (48, 96, 192, 1024), "x1_0": (116, 232, 464, 1024),
    "x1_5": (176, 352, 704, 1024), "x2_0": (244, 488, 976, 2048),
}
V2_REPEATS = (4, 8, 4)


def v2_unit(name: str, inp: int, out: int, stride: int, megvii: bool = False) -> Sequential:
    """Stride 1: channel split, identity | (1x1, dw 3x3, 1x1) branch, concat, shuffle.
    Stride 2: both branches see the whole input and downsample.
    ``megvii``: Megvii's ShuffleNet-Series layout (MindCV's): a stride-1 unit shuffles first
    (even channels to the identity, odd ones to the branch: the paper's shuffle with C / 2 groups)
    and not after the concat; a stride-2 unit's first branch keeps ``inp`` channels and the second
    gives ``out - inp``."""
    bf = out // 2
    b2_out = out - inp if megvii and stride == 2 else bf
    branch2 = Sequential(name="branch2", layers=[
        conv_bn_act("pw1", bf, 1), conv_bn_act("dw", bf, 3, stride, groups=bf, act=None), conv_bn_act("pw2", b2_out, 1)])
    if stride == 1:
        branches = Parallel(name="branches", merge="concat", split=[inp - bf, bf],
                            branches=[Identity(name="branch1"), branch2])
    else:
        branch1 = Sequential(name="branch1", layers=[
            conv_bn_act("dw", inp, 3, stride, groups=inp, act=None), conv_bn_act("pw", inp if megvii else bf, 1)])
        branches = Parallel(name="branches", merge="concat", branches=[branch1, branch2])
    if megvii:
        return Sequential(name=name, layers=[ChannelShuffle(name="shuffle", groups=inp // 2), branches]
                          if stride == 1 else [branches])
    return Sequential(name=name, layers=[branches, ChannelShuffle(name="shuffle", groups=2)])


def build_v2(*, name: str, size: str, num_classes: int = 1000, input_size: InputSize = 224, in_channels: int = 3,
             width: float = 1.0, megvii: bool = False):
    """``megvii=True``: MindCV's ``shufflenet_v2_*``, Megvii's ShuffleNet-Series code (``v2_unit``),
    its stem pool ``pad_mode="same"`` and its classifier without bias: 2,278,760 parameters at 1x."""
    *stages, last = (scale_channels(c, width, where=name) for c in V2_CHANNELS[size])
    for c in stages:
        if c % 2:
            raise OverrideError(f"{name}: width {width} gives {c} stage channels; ShuffleNet V2 splits channels "
                                "in half, so they must be even")
    c = scale_channels(24, width, where="conv1")
    layers: list = [conv_bn_act("conv1", c, 3, 2),
                    MaxPool(name="maxpool", kernel=3, stride=2, padding="same" if megvii else 1)]
    for si, (out, n) in enumerate(zip(stages, V2_REPEATS), start=2):
        units = []
        for i in range(n):
            units.append(v2_unit(f"unit{i}", c, out, 2 if i == 0 else 1, megvii))
            c = out
        layers.append(Sequential(name=f"stage{si}", layers=units))
    layers += [conv_bn_act("conv5", last, 1), GlobalAvgPool(name="avgpool"), Flatten(name="flatten"),
               Linear(name="fc", out_features=check_classes(num_classes), bias=not megvii)]
    return model(name, image_shape(in_channels, input_size), layers, family="shufflenet_v2",
                 paper="Ma et al., ShuffleNet V2, arXiv:1807.11164, Table 5", source="torchvision.models.shufflenetv2",
                 num_classes=num_classes, size=size, width=width, rounding="int",
                 **variant({"megvii": False}, megvii=megvii))


# ---------------------------------------------------------------------------------- V1
V1_STAGE_CHANNELS = {  # Table 1, output channels of stages 2, 3, 4 per number of groups g
    1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960), 4: (272, 544, 1088), 8: (384, 768, 1536),
}
V1_REPEATS = (4, 8, 4)


def v1_unit(name: str, inp: int, out: int, stride: int, groups: int, first: bool, where: str,
            megvii_shuffle: bool = False, pool_padding=1) -> Sequential:
    """Figure 2 (b)/(c): 1x1 GConv (not grouped in stage 2's first unit) -> BN-ReLU -> shuffle ->
    3x3 depthwise (stride) -> BN -> 1x1 GConv -> BN; identity add (stride 1) or concat with a
    3x3/2 average-pooled shortcut (stride 2, the branch then gives out - in channels); ReLU."""
    mid = out // 4
    branch_out = out - inp if stride == 2 else out
    g1 = 1 if first else groups
    for what, c, g in (("bottleneck", mid, groups), ("output", branch_out, groups), ("input", inp, g1)):
        if c % g:
            raise OverrideError(f"{where}: {what} channels {c} are not divisible by groups={g}; this groups/width "
                                "combination cannot be built (ShuffleNet V1 Table 1)")
    body = [conv_bn_act("gconv1", mid, 1, groups=g1)]
    # Megvii's reference reshapes to (C / g, g) before transposing: the inverse permutation, a
    # shuffle with C / g groups
    body += [ChannelShuffle(name="shuffle", groups=mid // groups if megvii_shuffle else groups)] if groups > 1 else []
    body += [conv_bn_act("dw", mid, 3, stride, groups=mid, act=None), conv_bn_act("gconv2", branch_out, 1,
                                                                                  groups=groups, act=None)]
    body_seq = Sequential(name="body", layers=body)
    if stride == 2:
        merge = Parallel(name="merge", merge="concat", branches=[
            AvgPool(name="shortcut", kernel=3, stride=2, padding=pool_padding, count_include_pad=pool_padding != "same"),
            body_seq])
    else:
        merge = Parallel(name="merge", merge="add", branches=[body_seq, Identity(name="shortcut")])
    return Sequential(name=name, layers=[merge, Act(name="relu", fn="relu")])


_V1_DEFAULTS = {"megvii_shuffle": False, "pool_padding": 1, "fc_bias": True}


def build_v1(*, name: str, groups: int = 3, width: float = 1.0, num_classes: int = 1000,
             input_size: InputSize = 224, in_channels: int = 3, megvii_shuffle: bool = False,
             pool_padding: int | Literal["same"] = 1, fc_bias: bool = True):
    """``width`` is the paper's scale factor s ("ShuffleNet s x": every filter count times s).
    MindCV's ``shufflenet_v1_g*`` (Megvii's ShuffleNet-Series code) needs ``megvii_shuffle`` (its
    channel shuffle reshapes to (C / g, g): the inverse permutation of the paper's), ``pool_padding
    ="same"`` (both pools ``pad_mode="same"``; its average pool then divides by the input pixels
    only) and ``fc_bias=False``: 1,864,728 parameters for g=3, 1x."""
    if groups not in V1_STAGE_CHANNELS:
        raise OverrideError(f"{name}: groups must be one of {sorted(V1_STAGE_CHANNELS)} (Table 1), got {groups}")
    c = scale_channels(24, width, where="conv1")
    layers: list = [conv_bn_act("conv1", c, 3, 2), MaxPool(name="maxpool", kernel=3, stride=2, padding=pool_padding)]
    for si, (out, n) in enumerate(zip(V1_STAGE_CHANNELS[groups], V1_REPEATS), start=2):
        out = scale_channels(out, width, where=f"stage{si}")
        units = []
        for i in range(n):
            units.append(v1_unit(f"unit{i}", c, out, 2 if i == 0 else 1, groups, first=si == 2 and i == 0,
                                 where=f"{name} (groups={groups}, width={width}) stage{si}.unit{i}",
                                 megvii_shuffle=megvii_shuffle, pool_padding=pool_padding))
            c = out
        layers.append(Sequential(name=f"stage{si}", layers=units))
    layers += [GlobalAvgPool(name="avgpool"), Flatten(name="flatten"),
               Linear(name="fc", out_features=check_classes(num_classes), bias=fc_bias)]
    return model(name, image_shape(in_channels, input_size), layers, family="shufflenet_v1",
                 paper="Zhang et al., ShuffleNet, arXiv:1707.01083, Table 1 / Fig. 2",
                 source="paper; Megvii reference for stem and bottleneck = out/4", num_classes=num_classes,
                 groups=groups, width=width, rounding="int",
                 **variant(_V1_DEFAULTS, megvii_shuffle=megvii_shuffle, pool_padding=pool_padding, fc_bias=fc_bias))


_V2_REFERENCES = {  # torchvision model docs (params), ShuffleNet V2 paper Table 5 (MFLOPs)
    size: (Reference("torchvision model docs; ShuffleNet V2 paper Table 5", params=p, macs=m, macs_rtol=0.02),)
    for size, p, m in (("x0_5", 1_366_792, 41), ("x1_0", 2_278_604, 146), ("x1_5", 3_503_624, 299),
                       ("x2_0", 7_393_996, 591))}
_V2_REFERENCES["x1_0"] += (Reference("ShuffleNet V2 transfer-learning blog (torchsummary, 10 classes)",
                                     params=1_263_854, overrides={"num_classes": 10}),)

_MINDCV_V2 = {"x0_5": 1_365_792, "x1_0": 2_278_760, "x1_5": 3_506_720, "x2_0": 7_402_600}


# --- checkpoint layouts: a library's module path for each canonical tensor (onespec.importers) ---
def _torchvision_v2(t: Tree, name: str) -> str:
    """torchvision's ``shufflenet_v2_*``: ``conv1`` / ``conv5`` and each branch as sequences
    numbered in order, ``stage<s>.<i>.branch1`` / ``branch2``, ``fc``."""
    node, leaf = name.rsplit(".", 1)
    m = re.fullmatch(r"(stage\d)\.unit(\d+)\.branches\.(branch[12])\.(.+)", node)
    if m:
        branch = f"{m.group(1)}.unit{m.group(2)}.branches.{m.group(3)}"
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}.{t.leaf_pos(branch, node)}.{leaf}"
    if node.startswith(("conv1.", "conv5.")):
        top = node.split(".")[0]
        return f"{top}.{t.leaf_pos(top, node)}.{leaf}"
    if node == "fc":
        return name
    raise KeyError(name)


@per_node
def _mindcv_v2(t: Tree, node: str) -> str:
    """MindCV ``shufflenet_v2_*`` (Megvii's layout): ``first_conv.0`` / ``.1``, units numbered
    across stages as ``features.<i>`` with ``branch_main`` (pw, BN, ReLU, dw, BN, pw, BN, ReLU) and
    ``branch_proj`` (dw, BN, pw, BN, ReLU; stride-2 units), ``conv_last.0`` / ``.1``, ``classifier``."""
    if node == "fc":
        return "classifier"
    if node.startswith(("conv1.", "conv5.")):
        return f"{'first_conv' if node.startswith('conv1') else 'conv_last'}.{0 if node.endswith('conv') else 1}"
    m = re.fullmatch(r"(stage\d\.unit\d+)\.branches\.(branch[12])\..+", node)
    branch, i = f"{m.group(1)}.branches.{m.group(2)}", t.across(r"stage\d", m.group(1))
    return (f"features.{i}.{'branch_main' if m.group(2) == 'branch2' else 'branch_proj'}"
            f".{t.leaf_pos(branch, node)}")


@per_node
def _mindcv_v1(t: Tree, node: str) -> str:
    """MindCV ``shufflenet_v1_g*`` (Megvii's layout): ``first_conv.0`` / ``.1``, units numbered
    across stages as ``features.<i>``, ``branch_main_1`` (1x1 group conv, BN, ReLU) and
    ``branch_main_2`` (depthwise conv, BN, 1x1 group conv, BN), ``classifier``."""
    if node == "fc":
        return "classifier"
    if node.startswith("conv1."):
        return f"first_conv.{0 if node.endswith('conv') else 1}"
    m = re.fullmatch(r"(stage\d\.unit\d+)\.merge\.body\.(gconv1|dw|gconv2)\.(conv|bn)", node)
    part = {"gconv1": ("branch_main_1", 0), "dw": ("branch_main_2", 0), "gconv2": ("branch_main_2", 2)}[m.group(2)]
    i = t.across(r"stage\d", m.group(1))
    return f"features.{i}.{part[0]}.{part[1] + (0 if m.group(3) == 'conv' else 1)}"


@per_node
def _paddleclas_v2(t: Tree, node: str) -> str:
    """PaddleClas ``ShuffleNetV2_*``: ``_conv1``, blocks ``<stage>_<i>`` (from 1) with
    ``_conv_dw_1``/``_conv_linear_1`` (branch 1) and ``_conv_pw[_2]``/``_conv_dw[_2]``/
    ``_conv_linear[_2]`` (branch 2; ``_2`` in a stride-2 unit), ``_last_conv``, ``_fc``; a
    ConvBNLayer's parts are ``_conv`` / ``_batch_norm``."""
    if node == "fc":
        return "_fc"
    leaf = {"conv": "_conv", "bn": "_batch_norm"}[node.rsplit(".", 1)[1]]
    if node.startswith(("conv1.", "conv5.")):
        return f"{'_conv1' if node.startswith('conv1') else '_last_conv'}.{leaf}"
    m = re.fullmatch(r"stage(\d)\.unit(\d+)\.branches\.(branch[12])\.(dw|pw|pw1|pw2)\.(conv|bn)", node)
    stage, unit, branch, part = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    down = t.op[f"stage{stage}.unit{unit}.branches.branch1"] != "identity"
    if branch == "branch1":
        name = {"dw": "_conv_dw_1", "pw": "_conv_linear_1"}[part]
    else:
        name = {"pw1": "_conv_pw", "dw": "_conv_dw", "pw2": "_conv_linear"}[part] + ("_2" if down else "")
    return f"{stage}_{unit + 1}.{name}.{leaf}"


for _size in V2_CHANNELS:
    register(f"shufflenet_v2_{_size}", build_v2, f"ShuffleNet V2 {_size.replace('_', '.')[1:]}x", size=_size,
             importers={"torchvision": _torchvision_v2,
                        "paddleclas": Import(_paddleclas_v2, model=f"ShuffleNetV2_{_size}"),
                        "mindcv": Import(_mindcv_v2, {"megvii": True})},
             references=_V2_REFERENCES[_size] + (Reference(f"MindCV shufflenet_v2_{_size} (parameter count of its "
                                                           "network)", params=_MINDCV_V2[_size],
                                                           overrides={"megvii": True}),))
_MINDCV_V1 = {"megvii_shuffle": True, "pool_padding": "same", "fc_bias": False}
register("shufflenet_v1", build_v1, "ShuffleNet V1 (groups 1/2/3/4/8, width 0.5-2.0; default g=3, 1x)",
         importers={"mindcv": Import(_mindcv_v1, _MINDCV_V1, "shufflenet_v1_g3_10")},
         references=(Reference("MindCV shufflenet_v1_g3_10 (parameter count of its network)", params=1_864_728,
                               overrides=_MINDCV_V1),
    Reference("ShuffleNet V1 paper Table 2 (1.9M)", params=1_900_000, params_rtol=0.03),
    *(Reference("ShuffleNet V1 paper Table 1 (MFLOPs, 1x)", macs=m, macs_rtol=0.015, overrides={"groups": g})
      for g, m in ((1, 143), (2, 140), (3, 137), (4, 133), (8, 137)))))
