"""MindSpore networks for the capture tests (mindspore only: ``onespec capture
mindspore_models.py:FUNCTION`` imports this file as a user's model code)."""
import mindspore as ms
import numpy as np
from mindspore import nn, ops


class _Block(nn.Cell):
    """MnasNet's inverted residual: expand, depthwise, project, the input added back."""

    def __init__(self, c):
        super().__init__()
        self.layers = nn.SequentialCell([
            nn.Conv2d(c, 2 * c, 1), nn.BatchNorm2d(2 * c, momentum=0.99, eps=1e-3), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, pad_mode="pad", padding=1, group=2 * c), nn.BatchNorm2d(2 * c), nn.ReLU6(),
            nn.Conv2d(2 * c, c, 1), nn.BatchNorm2d(c)])

    def construct(self, x):
        out = self.layers(x)
        out += x
        return out


class SmallMnas(nn.Cell):
    """A stem with ``same`` padding, an inverted residual (``+=``), a concat and a channel slice
    (GhostNet's), a gate multiplied in, a global mean, inference-time dropout, a Dense head; a
    cell named with a leading ``_``."""

    def __init__(self):
        super().__init__()
        self._stem = nn.SequentialCell([nn.Conv2d(3, 8, 3, stride=2, pad_mode="same", has_bias=True),
                                        nn.BatchNorm2d(8), nn.HSwish()])
        self.block = _Block(8)
        self.gate = nn.HSigmoid()
        self.dropout = nn.Dropout(p=0.2)
        self.classifier = nn.Dense(8, 5)

    def construct(self, x):
        x = self._stem(x)
        x = ops.concat((self.block(x), x), axis=1)[:, 4:12]
        x = x * self.gate(x)
        return self.classifier(self.dropout(ops.mean(x, axis=(2, 3), keep_dims=False)))


class _Unknown(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.tail = nn.Conv2d(3, 3, 1)

    def construct(self, x):
        return self.tail(ops.elu(self.conv(x)))


def randomized(net):
    """Non-trivial BN statistics and affine terms, so that every tensor's mapping shows."""
    rng = np.random.default_rng(0)
    for name, p in net.parameters_and_names():
        if name.endswith(("gamma", "moving_variance")):
            p.set_data(ms.Tensor(rng.uniform(0.5, 1.5, p.shape).astype(np.float32)))
        elif name.endswith(("beta", "moving_mean")):
            p.set_data(ms.Tensor(rng.normal(0, 0.1, p.shape).astype(np.float32)))
    net.set_train(False)
    return net


def build_small_mnas():
    ms.set_seed(0)
    return randomized(SmallMnas())


def build_unknown():
    return _Unknown()


def build_mnasnet():
    """MindCV's mnasnet_100 (not in onespec's zoo), random weights and BN statistics."""
    import mindcv

    ms.set_seed(0)
    return randomized(mindcv.create_model("mnasnet_100", num_classes=1000))


class _StraightThrough(nn.Cell):
    """A relu (an op onespec has) whose custom bprop passes the gradient through."""

    def construct(self, x):
        return ops.relu(x)

    def bprop(self, x, out, dout):
        return (dout,)


class _Custom(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.clip = _StraightThrough()

    def construct(self, x):
        return self.clip(self.conv(x))


def build_ghostnet():
    """MindCV's ghostnet_100, random weights, its BN scales in [0.25, 0.75]: with [0.5, 1.5] the
    random network is chaotic enough that float32 rounding alone parts the frameworks by 1e-4."""
    import mindcv

    ms.set_seed(0)
    net = randomized(mindcv.create_model("ghostnet_100", num_classes=1000))
    for name, p in net.parameters_and_names():
        if name.endswith("gamma"):
            p.set_data(p * 0.5)
    return net
