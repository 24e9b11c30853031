"""SqueezeNet (Iandola et al., 2016, arXiv:1602.07360), Table 1 and Figure 2.

Structure as torchvision's squeezenet1_0 / squeezenet1_1: every conv has a bias, no BN,
max-pools are 3x3/2 with ``ceil_mode=True`` (so 1.0's conv1 output 109x109 pools to 54x54, not 54,
and 27x27 after pool 2). The bypass variants are the paper's Section 6 / Figure 2: *simple*
adds identity bypasses around fire3, fire5, fire7, fire9 (where in == out channels); *complex*
also adds a 1x1 conv bypass (with bias, no activation) around fire2, fire4, fire6, fire8.
"""
from __future__ import annotations

import re
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict

from ..importers import Tree, per_node
from ..spec import Act, Conv, Dropout, Flatten, GlobalAvgPool, Identity, MaxPool, Parallel, Sequential
from ..spec import scale_channels
from ..errors import OverrideError
from .common import InputSize, check_classes, image_shape, model
from .registry import Import, Reference, register


class Fire(BaseModel):
    """A Fire module row: squeeze 1x1 filters, expand 1x1 and expand 3x3 filters (Table 1's s1x1, e1x1, e3x3)."""
    model_config = ConfigDict(frozen=True)
    s1x1: int
    e1x1: int
    e3x3: int


class Stem(BaseModel):
    model_config = ConfigDict(frozen=True)
    out: int
    kernel: int
    stride: int


class Pool(BaseModel):
    model_config = ConfigDict(frozen=True)


Row = Union[Stem, Pool, Fire]
POOL = Pool()

# Table 1 (v1.0) and torchvision's v1.1 (3x3 conv1, pools moved earlier).
SQUEEZENET_1_0: list[Row] = [
    Stem(out=96, kernel=7, stride=2), POOL,
    Fire(s1x1=16, e1x1=64, e3x3=64), Fire(s1x1=16, e1x1=64, e3x3=64), Fire(s1x1=32, e1x1=128, e3x3=128), POOL,
    Fire(s1x1=32, e1x1=128, e3x3=128), Fire(s1x1=48, e1x1=192, e3x3=192), Fire(s1x1=48, e1x1=192, e3x3=192),
    Fire(s1x1=64, e1x1=256, e3x3=256), POOL,
    Fire(s1x1=64, e1x1=256, e3x3=256),
]
SQUEEZENET_1_1: list[Row] = [
    Stem(out=64, kernel=3, stride=2), POOL,
    Fire(s1x1=16, e1x1=64, e3x3=64), Fire(s1x1=16, e1x1=64, e3x3=64), POOL,
    Fire(s1x1=32, e1x1=128, e3x3=128), Fire(s1x1=32, e1x1=128, e3x3=128), POOL,
    Fire(s1x1=48, e1x1=192, e3x3=192), Fire(s1x1=48, e1x1=192, e3x3=192),
    Fire(s1x1=64, e1x1=256, e3x3=256), Fire(s1x1=64, e1x1=256, e3x3=256),
]
TABLES = {"1_0": SQUEEZENET_1_0, "1_1": SQUEEZENET_1_1}


def fire(name: str, row: Fire, width: float) -> Sequential:
    s, e1, e3 = (scale_channels(c, width, where=name) for c in (row.s1x1, row.e1x1, row.e3x3))

    def expand(branch: str, out: int, k: int) -> Sequential:
        return Sequential(name=branch, layers=[Conv(name="conv", out_channels=out, kernel=k, padding=k // 2),
                                               Act(name="relu", fn="relu")])
    return Sequential(name=name, layers=[
        Conv(name="squeeze", out_channels=s, kernel=1), Act(name="squeeze_relu", fn="relu"),
        Parallel(name="expand", merge="concat", branches=[expand("expand1x1", e1, 1), expand("expand3x3", e3, 3)]),
    ])


def build(*, name: str, version: Literal["1_0", "1_1"], bypass: Literal["none", "simple", "complex"] = "none",
          num_classes: int = 1000, width: float = 1.0, input_size: InputSize = 224, in_channels: int = 3,
          ceil_mode: bool = True, conv1_padding: int = 0):
    """``ceil_mode=False``: MindCV's and PaddleClas's squeezenets (floor-mode pools: 1.0's second
    pool gives 26x26 where torchvision's ceil mode gives 27x27); ``conv1_padding=1``: their 1.1
    pads its 3x3/2 first conv (torchvision's does not)."""
    if isinstance(conv1_padding, bool) or not isinstance(conv1_padding, int) or conv1_padding < 0:
        raise OverrideError(f"{name}: conv1_padding must be an int >= 0, got {conv1_padding!r}")
    features: list = []
    channels = in_channels
    fire_no, pool_no = 2, 1  # the paper numbers fire modules from 2
    for row in TABLES[version]:
        if isinstance(row, Stem):
            channels = scale_channels(row.out, width, where="features.conv1")
            features += [Conv(name="conv1", out_channels=channels, kernel=row.kernel, stride=row.stride,
                              padding=conv1_padding),
                         Act(name="relu1", fn="relu")]
        elif isinstance(row, Pool):
            features.append(MaxPool(name=f"pool{pool_no}", kernel=3, stride=2, ceil_mode=ceil_mode))
            pool_no += 1
        else:
            node = fire(f"fire{fire_no}", row, width)
            out = scale_channels(row.e1x1, width) + scale_channels(row.e3x3, width)
            if bypass != "none" and fire_no % 2 == 1:  # in == out here: identity bypass
                node = Parallel(name=node.name, merge="add",
                                branches=[node.model_copy(update={"name": "body"}), Identity(name="bypass")])
            elif bypass == "complex" and fire_no % 2 == 0:
                node = Parallel(name=node.name, merge="add", branches=[
                    node.model_copy(update={"name": "body"}),
                    Conv(name="bypass", out_channels=out, kernel=1)])
            features.append(node)
            channels = out
            fire_no += 1
    classifier = [Dropout(name="dropout", p=0.5), Conv(name="final_conv", out_channels=check_classes(num_classes),
                                                     kernel=1),
                  Act(name="relu", fn="relu"), GlobalAvgPool(name="avgpool"), Flatten(name="flatten")]
    return model(name, image_shape(in_channels, input_size),
                 [Sequential(name="features", layers=features), Sequential(name="classifier", layers=classifier)],
                 family="squeezenet", paper="Iandola et al., SqueezeNet, arXiv:1602.07360, Table 1 / Fig. 2",
                 source="torchvision.models.squeezenet", num_classes=num_classes, version=version, bypass=bypass,
                 width=width, rounding="int", **({} if ceil_mode else {"ceil_mode": False}),
                 **({"conv1_padding": conv1_padding} if conv1_padding else {}))


# PaddleClas's dropout before the final conv is downscale_in_infer (x 0.5 at inference): folded
# into that conv's weight (relu(W (x / 2) + b) = relu((W / 2) x + b))
_PADDLECLAS_DROPOUT = {"classifier.final_conv.weight": 0.5}


# --- checkpoint layouts: a library's module path for each canonical tensor (onespec.importers) ---
def _torchvision(t: Tree, name: str) -> str:
    """torchvision's ``squeezenet1_*`` (also MindCV's): ``features.<i>`` and ``classifier.<i>`` by
    position, a fire module's ``squeeze`` / ``expand1x1`` / ``expand3x3``."""
    node, leaf = name.rsplit(".", 1)
    m = re.fullmatch(r"features\.(\w+?)(?:\.(squeeze|expand\.(expand1x1|expand3x3)\.conv))?", node)
    if m:
        idx = t.pos(f"features.{m.group(1)}")
        sub = "" if m.group(2) is None else "." + (m.group(3) or "squeeze")
        return f"features.{idx}{sub}.{leaf}"
    if node == "classifier.final_conv":
        return f"classifier.{t.pos(node)}.{leaf}"
    raise KeyError(name)


@per_node
def _paddleclas(t: Tree, node: str) -> str:
    """PaddleClas ``SqueezeNet1_*``: ``_conv`` (conv1), fire modules ``_conv1`` .. ``_conv8``
    (squeeze ``._conv._conv``, expand 1x1 / 3x3 ``._conv_path1._conv`` / ``._conv_path2._conv``),
    ``_conv9`` (the final 1x1 conv)."""
    if node == "features.conv1":
        return "_conv"
    if node == "classifier.final_conv":
        return "_conv9"
    m = re.fullmatch(r"features\.fire(\d)\.(squeeze|expand\.expand1x1\.conv|expand\.expand3x3\.conv)", node)
    part = {"squeeze": "_conv", "expand.expand1x1.conv": "_conv_path1", "expand.expand3x3.conv": "_conv_path2"}
    return f"_conv{int(m.group(1)) - 1}.{part[m.group(2)]}._conv"


register("squeezenet1_0", build, "SqueezeNet 1.0 (paper Table 1)", version="1_0",
         importers={"torchvision": _torchvision, "mindcv": Import(_torchvision, {"ceil_mode": False}),
                    "paddleclas": Import(_paddleclas, {"ceil_mode": False}, "SqueezeNet1_0",
                                         scales=_PADDLECLAS_DROPOUT)},
         references=(Reference("torchvision model docs; SqueezeNet paper Table 1 (1.25M)", params=1_248_424),))
register("squeezenet1_1", build, "SqueezeNet 1.1 (2.4x fewer MACs, same accuracy)", version="1_1",
         importers={"torchvision": _torchvision,
                    "mindcv": Import(_torchvision, {"ceil_mode": False, "conv1_padding": 1}),
                    "paddleclas": Import(_paddleclas, {"ceil_mode": False, "conv1_padding": 1},
                                         "SqueezeNet1_1", scales=_PADDLECLAS_DROPOUT)},
         references=(
             Reference("torchvision model docs", params=1_235_496),
             Reference("SqueezeNet 1.1 transfer-learning blog (torchsummary, 10 classes)", params=727_626,
                       overrides={"num_classes": 10})))
register("squeezenet1_0_bypass", build, "SqueezeNet 1.0 with simple bypass (paper Fig. 2, middle)",
         version="1_0", bypass="simple",
         references=(Reference("SqueezeNet paper Table 3 (1.2M)", params=1_200_000, params_rtol=0.05),))
register("squeezenet1_0_complex_bypass", build, "SqueezeNet 1.0 with complex bypass (paper Fig. 2, right)",
         version="1_0", bypass="complex",
         references=(Reference("SqueezeNet paper Table 3 (1.7M; its bypass convs are sized differently, "
                               "see docs/zoo.md)", params=1_700_000, params_rtol=0.07),))
