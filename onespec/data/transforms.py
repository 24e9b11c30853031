"""Augmentation implemented once (numpy, Pillow for resampling), so every framework trains on
the same pixels. Each transform is a pydantic model (a recipe row) whose ``__call__(img, rng)``
maps a ``uint8`` HWC image to another; ``rng`` is the sample's own generator (``loader``), so
the result depends only on (seed, epoch, sample index), never on workers or framework.

The random rules follow torchvision's definitions (``RandomResizedCrop``: 10 tries of
scale/log-ratio sampling, then a center-crop fallback; ``Resize(int)``: shorter side), with
Pillow's bilinear filter as torchvision uses on PIL images. ``normalize`` is always last and
turns the image into float32 CHW ``(x / 255 - mean) / std``.
"""
from __future__ import annotations

import math
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator


class _T(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _resize(img: np.ndarray, w: int, h: int, box=None) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR, box=box))


class RandomResizedCrop(_T):
    op: Literal["random_resized_crop"] = "random_resized_crop"
    size: PositiveInt
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    @model_validator(mode="after")
    def _check(self):
        if not (0 < self.scale[0] <= self.scale[1] <= 1 and 0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError(f"scale {self.scale} must be within (0, 1] ascending and ratio {self.ratio} positive ascending")
        return self

    def __call__(self, img, rng):
        H, W = img.shape[:2]
        area, logr = H * W, (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*logr))
            w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
            if 0 < w <= W and 0 < h <= H:
                i, j = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
                break
        else:  # torchvision's fallback: the largest central crop within the ratio range
            r = W / H
            if r < self.ratio[0]:
                w, h = W, int(round(W / self.ratio[0]))
            elif r > self.ratio[1]:
                h, w = H, int(round(H * self.ratio[1]))
            else:
                w, h = W, H
            i, j = (H - h) // 2, (W - w) // 2
        return _resize(img, self.size, self.size, box=(j, i, j + w, i + h))


class RandomCrop(_T):
    """Zero-pad ``padding`` pixels on every side, then crop ``size`` at a random offset."""
    op: Literal["random_crop"] = "random_crop"
    size: PositiveInt
    padding: int = Field(0, ge=0)

    def __call__(self, img, rng):
        p = self.padding
        if p:
            img = np.pad(img, ((p, p), (p, p), (0, 0)))
        H, W = img.shape[:2]
        if H < self.size or W < self.size:
            img = _resize(img, max(W, self.size), max(H, self.size))
            H, W = img.shape[:2]
        i, j = int(rng.integers(0, H - self.size + 1)), int(rng.integers(0, W - self.size + 1))
        return img[i:i + self.size, j:j + self.size]


class HorizontalFlip(_T):
    op: Literal["hflip"] = "hflip"
    p: float = Field(0.5, ge=0, le=1)

    def __call__(self, img, rng):
        return img[:, ::-1] if rng.random() < self.p else img


class Resize(_T):
    """Shorter side to ``size`` (keeping the aspect ratio), like torchvision's ``Resize(int)``."""
    op: Literal["resize"] = "resize"
    size: PositiveInt

    def __call__(self, img, rng):
        H, W = img.shape[:2]
        if H <= W:
            h, w = self.size, max(1, int(self.size * W / H))
        else:
            w, h = self.size, max(1, int(self.size * H / W))
        return img if (h, w) == (H, W) else _resize(img, w, h)


class CenterCrop(_T):
    op: Literal["center_crop"] = "center_crop"
    size: PositiveInt

    def __call__(self, img, rng):
        H, W = img.shape[:2]
        if H < self.size or W < self.size:
            img = np.pad(img, ((max(0, (self.size - H + 1) // 2),) * 2, (max(0, (self.size - W + 1) // 2),) * 2, (0, 0)))
            H, W = img.shape[:2]
        i, j = int(round((H - self.size) / 2)), int(round((W - self.size) / 2))
        return img[i:i + self.size, j:j + self.size]


class Normalize(_T):
    """float32 CHW ``(x / 255 - mean) / std`` per channel; always applied last."""
    op: Literal["normalize"] = "normalize"
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    @model_validator(mode="after")
    def _check(self):
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(f"mean {self.mean} and std {self.std} need the same length and std > 0")
        return self

    def __call__(self, img, rng):
        x = img.astype(np.float32) * np.float32(1 / 255)
        if len(self.mean) not in (1, x.shape[-1]):
            raise ValueError(f"normalize has {len(self.mean)} channels, the image {x.shape[-1]}")
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1))


Transform = Annotated[Union[RandomResizedCrop, RandomCrop, HorizontalFlip, Resize, CenterCrop, Normalize],
                      Field(discriminator="op")]


def apply(transforms, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Run ``transforms`` in order; an image left uint8 HWC becomes float32 CHW in [0, 1]."""
    for t in transforms:
        img = t(img, rng)
    if img.dtype == np.uint8:
        img = np.ascontiguousarray((img.astype(np.float32) * np.float32(1 / 255)).transpose(2, 0, 1))
    return img
