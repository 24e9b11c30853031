"""MobileNet V3 (Howard et al., 2019, arXiv:1905.02244, Tables 1 and 2), structured as
torchvision's mobilenet_v3_large / _small: BN eps 1e-3 momentum 0.01, SE squeeze
``make_divisible(exp // 4, 8)`` with biased 1x1 convs, ReLU then hardsigmoid (x+3)/6."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..spec import (Act, Conv, Dropout, Flatten, GlobalAvgPool, HardSigmoid, Identity, Linear, Parallel, Scale,
                    Sequential, make_divisible, scale_channels)
from ..errors import OverrideError
from .common import InputSize, check_classes, conv_bn_act, image_shape, model, variant
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
register("mobilenet_v3_large", build, "MobileNet V3 Large (k, exp, c, se, act, s table)", size="large",
         importers={"torchvision": "mobilenet_v3",
                    "timm": Import("timm_mobilenet_v3", {"bn_eps": 1e-5}, "mobilenetv3_large_100"),
                    "mindcv": Import("mindcv_mobilenet_v3", {"bn_eps": 1e-5, "dw_padding": "same"},
                                     "mobilenet_v3_large_100"),
                    "paddleclas": Import("paddleclas_mobilenet_v3", _PADDLECLAS, "MobileNetV3_large_x1_0",
                                         {"classifier.fc2.weight": 0.8})},
         references=(Reference("torchvision model docs; MobileNet V3 paper Table 3 (219M MAdds)", params=5_483_032,
                               macs=219, macs_rtol=0.02),
                     Reference("PaddleClas MobileNetV3_large_x1_0 (parameter count of its network)", params=5_480_206,
                               overrides=_PADDLECLAS)))
register("mobilenet_v3_small", build, "MobileNet V3 Small (k, exp, c, se, act, s table)", size="small",
         importers={"torchvision": "mobilenet_v3",
                    "timm": Import("timm_mobilenet_v3", {"bn_eps": 1e-5}, "mobilenetv3_small_100"),
                    "mindcv": Import("mindcv_mobilenet_v3", {"bn_eps": 1e-5, "dw_padding": "same"},
                                     "mobilenet_v3_small_100"),
                    "paddleclas": Import("paddleclas_mobilenet_v3", {**_PADDLECLAS, "last_channel": 1280},
                                         "MobileNetV3_small_x1_0", {"classifier.fc2.weight": 0.8})},
         references=(Reference("torchvision model docs; MobileNet V3 paper Table 3 (56M MAdds)", params=2_542_856,
                               macs=56, macs_rtol=0.02),
                     Reference("PaddleClas MobileNetV3_small_x1_0 (parameter count of its network)", params=2_939_958,
                               overrides={**_PADDLECLAS, "last_channel": 1280})))
