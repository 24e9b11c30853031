"""HybridSN (Roy et al., 2019, arXiv:1902.06701, Table 1): 3D-2D CNN for hyperspectral
image classification on PCA-reduced patches (1 x bands x patch x patch; 30 bands, 25 x 25).

``hybridsn`` is the paper's network (no BN; Dense -> ReLU -> Dropout 0.4).
``hybridsn_bn`` is the PyTorch HybridSN tutorial's version (Indian Pines): BN after every conv, and its head order
Linear -> Dropout -> ReLU (identical at inference)."""
from __future__ import annotations

from ..errors import OverrideError
from ..spec import Act, BatchNorm, Conv, Dropout, Flatten, Linear, Reshape, Sequential
from .common import check_classes, model
from .registry import Reference, register

CONV3D = ((8, (7, 3, 3)), (16, (5, 3, 3)), (32, (3, 3, 3)))  # Table 1: filters @ (depth, h, w)


def build(*, name: str, batch_norm: bool, num_classes: int = 16, bands: int = 30, input_size: int = 25,
          in_channels: int = 1, dropout: float = 0.4):
    for label, v in (("bands", bands), ("input_size", input_size), ("in_channels", in_channels)):
        if not isinstance(v, int) or v < 1:
            raise OverrideError(f"{name}: {label} must be a positive int, got {v!r}")
    need = 1 + sum(k[0] - 1 for _, k in CONV3D)
    if bands < need:
        raise OverrideError(f"{name}: bands={bands} cannot be covered by the 3D kernels (depths 7, 5, 3 need at "
                            f"least {need} spectral bands)")
    layers: list = []
    d, hw = bands, input_size
    for i, (c, k) in enumerate(CONV3D, start=1):
        unit = [Conv(name="conv", out_channels=c, kernel=k)]
        unit += [BatchNorm(name="bn")] if batch_norm else []
        layers.append(Sequential(name=f"conv3d_{i}", layers=unit + [Act(name="relu", fn="relu")]))
        d, hw = d - k[0] + 1, hw - k[1] + 1
    if hw < 3:
        raise OverrideError(f"{name}: input_size={input_size} is too small: after the 3D convs the patch is {hw}x{hw}, "
                            "smaller than the 3x3 2D kernel (need input_size >= 9)")
    # fold spectral depth into channels: (32, d, h, w) -> (32 * d, h, w), channel-major as the PyTorch tutorial's reshape
    layers.append(Reshape(name="fold", shape=(32 * d, hw, hw)))
    unit = [Conv(name="conv", out_channels=64, kernel=3)] + ([BatchNorm(name="bn")] if batch_norm else [])
    layers.append(Sequential(name="conv2d_4", layers=unit + [Act(name="relu", fn="relu")]))
    layers.append(Flatten(name="flatten"))
    for i, f in enumerate((256, 128), start=1):
        act, drop = Act(name=f"relu{i}", fn="relu"), Dropout(name=f"dropout{i}", p=dropout)
        layers += [Linear(name=f"fc{i}", out_features=f)] + ([drop, act] if batch_norm else [act, drop])
    layers.append(Linear(name="fc3", out_features=check_classes(num_classes)))
    return model(name, (in_channels, bands, input_size, input_size), layers, family="hybridsn",
                 paper="Roy et al., HybridSN, arXiv:1902.06701, Table 1",
                 source="PyTorch HybridSN tutorial (with BN)" if batch_norm else "paper (Keras, no BN)",
                 num_classes=num_classes, bands=bands, batch_norm=batch_norm)


register("hybridsn", build, "HybridSN (paper, no BN), 1x30x25x25 patches, 16 classes", batch_norm=False,
         references=(Reference("HybridSN paper Table (Keras summary)", params=5_122_176),))
register("hybridsn_bn", build, "HybridSN of the PyTorch HybridSN tutorial (BN after each conv)", batch_norm=True,
         references=(Reference("HybridSN paper count + 240 BN parameters of the tutorial's six BNs", params=5_122_416),))
