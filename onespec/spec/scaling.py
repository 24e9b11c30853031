"""Width scaling rules, as pure functions of the paper tables.

torchvision and PaddleClas round scaled channel counts differently; the rule used is a
field of each family's config and is recorded in ``ModelSpec.meta``.
"""
from __future__ import annotations

from typing import Literal

from ..errors import SpecError

Rounding = Literal["int", "divisible8"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """MobileNet rounding (torchvision ``_make_divisible``): nearest multiple of ``divisor``,
    never below ``min_value`` and never more than 10% below ``value``."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * value:
        new_v += divisor
    return new_v


def scale_channels(channels: int, width: float, rounding: Rounding = "int", *, where: str = "") -> int:
    """Channels of a table entry under width multiplier ``width``.

    ``int``: ``int(c * width)`` (MobileNet V1 paper, SqueezeNet/VGG); ``divisible8``:
    ``make_divisible(c * width, 8)`` (MobileNet V2/V3 in torchvision).
    Raises :class:`SpecError` (rule ``width``) when the result has no channels.
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 64:
        raise SpecError(where, "width", f"width multiplier must be a number in (0, 64], got {width!r}")
    if rounding == "int":
        out = int(channels * width)
    elif rounding == "divisible8":
        out = make_divisible(channels * width, 8)
    else:  # pragma: no cover - Literal guards this for typed callers
        raise SpecError(where, "width", f"unknown rounding rule {rounding!r}")
    if out < 1:
        raise SpecError(
            where, "width",
            f"width multiplier {width} turns {channels} channels into {out}; use a larger width",
        )
    return out
