"""The framework-free layer graph. Never imports a deep-learning framework."""
from .analysis import Analysis, analyze
from .model import ModelMeta, ModelSpec, NodeInfo, trace
from .nodes import (
    Act, AdaptiveAvgPool, AvgPool, BatchNorm, ChannelShuffle, Conv, Dropout, Flatten, GlobalAvgPool,
    HardSigmoid, Identity, Linear, MaxPool, Node, Parallel, Reshape, Scale, Sequential, Shape, ShiftMax,
)
from .scaling import make_divisible, scale_channels

__all__ = [
    "Act", "AdaptiveAvgPool", "Analysis", "AvgPool", "BatchNorm", "ChannelShuffle", "Conv", "Dropout",
    "Flatten", "GlobalAvgPool", "HardSigmoid", "Identity", "Linear", "MaxPool", "ModelMeta", "ModelSpec",
    "Node", "NodeInfo", "Parallel", "Reshape", "Scale", "Sequential", "Shape", "ShiftMax", "analyze", "make_divisible",
    "scale_channels", "trace",
]
