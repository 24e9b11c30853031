"""The framework-free layer graph. Never imports a deep-learning framework."""
from .analysis import Analysis, analyze
from .model import ModelMeta, ModelSpec, NodeInfo, parse_spec, trace
from .nodes import (
    OPS, Act, AdaptiveAvgPool, AvgPool, BatchNorm, ChannelShuffle, Conv, ConvTranspose, Dropout, Flatten,
    GlobalAvgPool, GroupNorm, HardSigmoid, Identity, LayerNorm, Linear, MaxPool, Node, Parallel, Reshape, Scale,
    Sequential, Shape, ShiftMax, Tensor, Upsample,
)
from .scaling import make_divisible, scale_channels

__all__ = [
    "OPS", "Act", "AdaptiveAvgPool", "Analysis", "AvgPool", "BatchNorm", "ChannelShuffle", "Conv", "ConvTranspose",
    "Dropout", "Flatten", "GlobalAvgPool", "GroupNorm", "HardSigmoid", "Identity", "LayerNorm", "Linear", "MaxPool",
    "ModelMeta", "ModelSpec", "Node", "NodeInfo", "Parallel", "Reshape", "Scale", "Sequential", "Shape", "ShiftMax",
    "Tensor", "Upsample", "analyze", "make_divisible", "parse_spec", "scale_channels", "trace",
]
