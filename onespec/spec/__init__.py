"""The framework-free layer graph. Never imports a deep-learning framework."""
from .analysis import Analysis, analyze
from .model import ModelMeta, ModelSpec, NodeInfo, parse_spec, trace
from .nodes import (
    OPS, Act, AdaptiveAvgPool, Affine, AvgPool, BatchNorm, ChannelShuffle, Conv, ConvTranspose, Dropout, Flatten,
    GlobalAvgPool, Graph, GroupNorm, HardSigmoid, HardTanh, Identity, L2Normalize, LayerNorm, LayerScale, Linear,
    MaxPool, Mean, Merge, Node, Pad, Parallel, Permute, PixelShuffle, PReLU, Reshape, Scale, Sequential, Shape,
    ShiftMax, Slice, Softmax, Tensor, Upsample,
)
from .scaling import make_divisible, scale_channels

__all__ = [
    "OPS", "Act", "AdaptiveAvgPool", "Affine", "Analysis", "AvgPool", "BatchNorm", "ChannelShuffle", "Conv",
    "ConvTranspose", "Dropout", "Flatten", "GlobalAvgPool", "Graph", "GroupNorm", "HardSigmoid", "HardTanh", "Identity",
    "L2Normalize", "LayerNorm", "LayerScale", "Linear", "MaxPool", "Mean", "Merge", "ModelMeta", "ModelSpec", "Node",
    "NodeInfo", "Pad", "Parallel", "Permute", "PixelShuffle", "PReLU", "Reshape", "Scale", "Sequential", "Shape",
    "ShiftMax", "Slice", "Softmax", "Tensor", "Upsample", "analyze", "make_divisible", "parse_spec", "scale_channels",
    "trace",
]
