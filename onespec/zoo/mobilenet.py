"""MobileNet V1 (Howard et al., 2017, arXiv:1704.04861, Table 1) and
MobileNet V2 (Sandler et al., 2018, arXiv:1801.04381, Table 2)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict

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


register("mobilenet_v1", build_v1, "MobileNet V1, width multiplier via width=1.0/0.75/0.5/0.25",
         importers={"mindcv": Import("mindcv_mobilenet_v1", model="mobilenet_v1_100"),
                    "paddleclas": Import("paddleclas_mobilenet_v1", model="MobileNetV1")}, references=tuple(
    Reference("MobileNet V1 paper Table 6 (params 0.1M, mult-adds 1M)", params=int(p * 1e6), params_rtol=0.05 / p,
              macs=m, macs_rtol=1 / m, overrides={"width": w})
    for w, p, m in ((1.0, 4.2, 569), (0.75, 2.6, 325), (0.5, 1.3, 149), (0.25, 0.5, 41))))
register("mobilenet_v2", build_v2, "MobileNet V2 (t, c, n, s table), torchvision rounding",
         importers={"torchvision": "mobilenet_v2", "mindcv": Import("mindcv_mobilenet_v2", model="mobilenet_v2_100"),
                    "mindspore_zoo": "mindspore_zoo_mobilenet_v2",
                    "paddleclas": Import("paddleclas_mobilenet_v2", {"expand_t1": True}, "MobileNetV2")},
         references=(Reference("torchvision model docs; MobileNet V2 paper (300M MAdds)", params=3_504_872, macs=300,
                               macs_rtol=0.01),))
