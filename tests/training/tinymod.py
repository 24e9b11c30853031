"""A network written by hand the way a new user would (stem conv 3x3 -> BN -> ReLU, max pool,
global pool, linear), for ``onespec align tinymod:tiny`` and as a spec file: small and well
conditioned, so two correct frameworks part only by float32 rounding."""
from __future__ import annotations

from onespec.spec import ModelSpec
from onespec.spec.nodes import Act, BatchNorm, Conv, Flatten, GlobalAvgPool, Linear, MaxPool, Sequential
from onespec.zoo.common import model


def tiny(num_classes: int = 10, input_size: int = 28, in_channels: int = 3) -> ModelSpec:
    stem = Sequential(name="stem", layers=[Conv(name="conv", out_channels=16, kernel=3, padding=1, bias=False),
                                           BatchNorm(name="bn"), Act(name="relu", fn="relu")])
    return model("tinymod", (in_channels, input_size, input_size),
                 [stem, MaxPool(name="pool", kernel=2, stride=2), GlobalAvgPool(name="gap"), Flatten(name="flatten"),
                  Linear(name="fc", out_features=num_classes)],
                 family="test", paper="", source="", num_classes=num_classes)
