"""Declare a small CNN once, inspect it, and build it in every installed framework.

    python examples/custom_spec.py
"""
import importlib.util

import numpy as np

import onespec
from onespec.backends import load_backend
from onespec.backends.numpy import evaluate as numpy_forward
from onespec.spec import (Act, BatchNorm, Conv, Flatten, GlobalAvgPool, Identity, Linear, MaxPool, ModelMeta,
                          ModelSpec, Parallel, Sequential)


def conv_bn_relu(name, out, stride=1):
    return Sequential(name=name, layers=[Conv(name="conv", out_channels=out, kernel=3, stride=stride, padding=1,
                                              bias=False), BatchNorm(name="bn"), Act(name="relu", fn="relu")])


spec = ModelSpec(
    name="tiny_resnet", input_shape=(3, 32, 32), meta=ModelMeta(family="example", num_classes=10),
    layers=[
        conv_bn_relu("stem", 16),
        Parallel(name="res1", merge="add", branches=[
            Sequential(name="body", layers=[conv_bn_relu("a", 16), conv_bn_relu("b", 16)]), Identity(name="skip")]),
        MaxPool(name="pool", kernel=2),
        conv_bn_relu("down", 32, stride=2),
        GlobalAvgPool(name="gap"), Flatten(name="flatten"), Linear(name="fc", out_features=10),
    ])

a = onespec.analyze(spec)
print(f"{spec.name}: {a.params:,} params, {a.state:,} BN state, {a.macs / 1e6:.2f}M MACs, output {a.output_shape}")

state = onespec.init_state(spec, seed=0)
x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
reference = numpy_forward(spec, state, x)  # the framework-free oracle
# mindspore first: it cannot be imported after paddle in one process
for fw in ("mindspore", "torch", "paddle"):
    if importlib.util.find_spec(fw) is None:
        print(f"{fw}: not installed")
        continue
    b = load_backend(fw)
    net = b.build(spec)
    b.load_state(net, spec, state)
    y = b.forward(net, x)[0]
    print(f"{fw:9s} {type(net).__module__}.{type(net).__name__}: max rel err vs numpy "
          f"{np.abs(y - reference).max() / np.abs(reference).max():.1e}")
