"""VGG (Simonyan & Zisserman, 2014, arXiv:1409.1556, Table 1 configurations A, B, D, E),
structured as torchvision's vgg*: 3x3 convs with bias (kept with BN), 2x2/2 max-pools,
adaptive average pool to 7x7, classifier 25088 -> 4096 -> 4096 -> classes with dropout 0.5.
``vgg11_cifar`` is the CIFAR-10 VGG11 of the PyTorch-on-Ascend VGG tutorial: dropout 0.5 after every conv, no adaptive pool,
classifier 512 -> 100 -> 10 on 32x32 inputs."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

from ..importers import Tree, flat, per_node
from ..spec import Act, AdaptiveAvgPool, BatchNorm, Conv, Dropout, Flatten, Linear, MaxPool, Sequential
from ..spec import scale_channels
from .common import InputSize, check_classes, image_shape, model
from .registry import Import, Reference, register


class VGGStage(BaseModel):
    """``convs`` 3x3 convolutions of ``c`` filters, then a 2x2/2 max-pool."""
    model_config = ConfigDict(frozen=True)
    convs: int
    c: int


def _stages(*rows: tuple[int, int]) -> list[VGGStage]:
    return [VGGStage(convs=n, c=c) for n, c in rows]


CONFIGS: dict[str, list[VGGStage]] = {
    "A": _stages((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),   # VGG11
    "B": _stages((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),   # VGG13
    "D": _stages((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),   # VGG16
    "E": _stages((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),   # VGG19
}


def _features(cfg: str, width: float, batch_norm: bool, conv_dropout: float, conv_bias: bool = True) -> Sequential:
    stages = []
    for si, st in enumerate(CONFIGS[cfg], start=1):
        c = scale_channels(st.c, width, where=f"features.stage{si}")
        layers = []
        for i in range(1, st.convs + 1):
            unit = [Conv(name="conv", out_channels=c, kernel=3, padding=1, bias=conv_bias)]
            unit += [BatchNorm(name="bn")] if batch_norm else []
            unit += [Act(name="relu", fn="relu")]
            unit += [Dropout(name="dropout", p=conv_dropout)] if conv_dropout else []
            layers.append(Sequential(name=f"conv{i}", layers=unit))
        layers.append(MaxPool(name="pool", kernel=2, stride=2))
        stages.append(Sequential(name=f"stage{si}", layers=layers))
    return Sequential(name="features", layers=stages)


def build(*, name: str, cfg: Literal["A", "B", "D", "E"], batch_norm: bool = False, num_classes: int = 1000,
          width: float = 1.0, input_size: InputSize = 224, in_channels: int = 3, dropout: float = 0.5,
          conv_bias: bool = True):
    """``conv_bias=False``: MindCV's vgg (MindSpore's ``nn.Conv2d`` has no bias by default)."""
    head = [Linear(name="fc1", out_features=4096), Act(name="relu1", fn="relu"), Dropout(name="dropout1", p=dropout),
            Linear(name="fc2", out_features=4096), Act(name="relu2", fn="relu"), Dropout(name="dropout2", p=dropout),
            Linear(name="fc3", out_features=check_classes(num_classes))]
    return model(name, image_shape(in_channels, input_size), [
        _features(cfg, width, batch_norm, 0.0, conv_bias), AdaptiveAvgPool(name="avgpool", output_size=7),
        Flatten(name="flatten"), Sequential(name="classifier", layers=head)],
        family="vgg", paper=f"Simonyan & Zisserman, arXiv:1409.1556, Table 1 config {cfg}",
        source="torchvision.models.vgg", num_classes=num_classes, cfg=cfg, batch_norm=batch_norm, width=width,
        rounding="int", **({} if conv_bias else {"conv_bias": False}))


def build_cifar(*, name: str, num_classes: int = 10, width: float = 1.0, input_size: InputSize = 32,
                in_channels: int = 3, dropout: float = 0.5, hidden: int = 100):
    head = [Linear(name="fc1", out_features=hidden), Act(name="relu", fn="relu"),
            Linear(name="fc2", out_features=check_classes(num_classes))]
    return model(name, image_shape(in_channels, input_size), [
        _features("A", width, False, dropout), Flatten(name="flatten"), Sequential(name="classifier", layers=head)],
        family="vgg", paper="Simonyan & Zisserman, arXiv:1409.1556, config A",
        source="PyTorch VGG11-on-CIFAR-10 tutorial (Ascend)", num_classes=num_classes, width=width,
        rounding="int")


_TV_PARAMS = {11: 132_863_336, 13: 133_047_848, 16: 138_357_544, 19: 143_667_240}
_TV_PARAMS_BN = {11: 132_868_840, 13: 133_053_736, 16: 138_365_992, 19: 143_678_248}


# --- checkpoint layouts: a library's module path for each canonical tensor (onespec.importers) ---
def _torchvision(t: Tree, name: str) -> str:
    """torchvision's ``vgg*`` (also MindCV's): ``features.<i>`` / ``classifier.<i>``, every module
    of the container numbered in order."""
    top = name.split(".", 1)[0]
    return flat(top)(t, name)


@per_node
def _paddleclas(t: Tree, node: str) -> str:
    """PaddleClas ``VGG*``: ``conv_block_<stage>.conv<i>`` (no biases), ``fc1``..``fc3``."""
    m = re.fullmatch(r"features\.stage(\d)\.conv(\d)\.conv|classifier\.(fc[123])", node)
    return m.group(3) or f"conv_block_{m.group(1)}.conv{m.group(2)}"


for _depth, _cfg in (("11", "A"), ("13", "B"), ("16", "D"), ("19", "E")):
    register(f"vgg{_depth}", build, f"VGG{_depth} (config {_cfg})", cfg=_cfg,
             importers={"torchvision": _torchvision, "mindcv": Import(_torchvision, {"conv_bias": False}),
                        # PaddleClas's dropouts are downscale_in_infer (x 0.5 at inference): folded
                        # into the weights of the Linear layers that follow them
                        "paddleclas": Import(_paddleclas, {"conv_bias": False}, f"VGG{_depth}",
                                             scales={"classifier.fc2.weight": 0.5, "classifier.fc3.weight": 0.5})},
             references=(Reference("torchvision model docs", params=_TV_PARAMS[int(_depth)]),))
    register(f"vgg{_depth}_bn", build, f"VGG{_depth} with BatchNorm (config {_cfg})", cfg=_cfg, batch_norm=True,
             importers={"torchvision": _torchvision},
             references=(Reference("torchvision model docs", params=_TV_PARAMS_BN[int(_depth)]),))
register("vgg11_cifar", build_cifar, "CIFAR-10 VGG11 of the Ascend VGG tutorial (dropout after each conv, "
         "512-100-10 head)", references=(Reference("VGG11-on-CIFAR-10 tutorial (torchsummary)", params=9_272_790),))
