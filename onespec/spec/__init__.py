"""The framework-free layer graph. Never imports a deep-learning framework."""
from .analysis import Analysis, analyze
from .model import ModelMeta, ModelSpec, NodeInfo, trace
from .nodes import (
    Act, AdaptiveAvgPool, AvgPool, BatchNorm, ChannelShuffle, Conv, Dropout, Flatten, GlobalAvgPool,
    HardSigmoid, Identity, Linear, MaxPool, Node, Parallel, Scale, Sequential, Shape,
)
from .scaling import make_divisible, scale_channels

__all__ = [
    "Act", "AdaptiveAvgPool", "Analysis", "AvgPool", "BatchNorm", "ChannelShuffle", "Conv", "Dropout",
    "Flatten", "GlobalAvgPool", "HardSigmoid", "Identity", "Linear", "MaxPool", "ModelMeta", "ModelSpec",
    "Node", "NodeInfo", "Parallel", "Scale", "Sequential", "Shape", "analyze", "make_divisible",
    "scale_channels", "trace",
]
