"""Small spec builders shared by families, and override checking."""
from __future__ import annotations

from typing import Optional, Union

from ..errors import OverrideError
from ..spec import Act, BatchNorm, Conv, ModelMeta, ModelSpec, Sequential

InputSize = Union[int, tuple[int, int]]


def image_shape(in_channels: int, input_size: InputSize) -> tuple[int, int, int]:
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or not 1 <= in_channels <= 4096:
        raise OverrideError(f"in_channels must be a positive int, got {in_channels!r}")
    hw = (input_size, input_size) if isinstance(input_size, int) else \
        tuple(input_size) if isinstance(input_size, (tuple, list)) else ()
    if len(hw) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65536 for v in hw):
        raise OverrideError(f"input_size must be a positive int or (H, W), got {input_size!r}")
    return (in_channels, *hw)


def check_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= 1 << 20:
        raise OverrideError(f"num_classes must be a positive int, got {num_classes!r}")
    return num_classes


def variant(defaults: dict, **given) -> dict:
    """The options in ``given`` that differ from their ``defaults``: what a library variant sets,
    recorded in the spec's meta only where set (a default spec's meta stays as it was)."""
    return {k: v for k, v in given.items() if v != defaults[k]}


def conv_bn_act(name: str, out: int, kernel: int, stride: int = 1, *, groups: int = 1,
                act: Optional[str] = "relu", eps: float = 1e-5, momentum: float = 0.1,
                in_channels: Optional[int] = None, padding=None) -> Sequential:
    """conv (no bias, symmetric padding (k - 1) // 2 unless ``padding`` is given) -> BN -> activation."""
    layers = [Conv(name="conv", out_channels=out, kernel=kernel, stride=stride,
                   padding=(kernel - 1) // 2 if padding is None else padding,
                   groups=groups, bias=False, in_channels=in_channels),
              BatchNorm(name="bn", eps=eps, momentum=momentum)]
    if act is not None:
        layers.append(Act(name=act, fn=act))
    return Sequential(name=name, layers=layers)


def model(name: str, shape, layers, *, family: str, paper: str, source: str, num_classes: int,
          **options) -> ModelSpec:
    return ModelSpec(name=name, input_shape=shape, layers=layers,
                     meta=ModelMeta(family=family, paper=paper, source=source, num_classes=num_classes,
                                    options=options))
