"""Paddle networks for the capture tests (paddle only: ``onespec capture paddle_models.py:FUNCTION``
imports this file as a user's model code)."""
import numpy as np
import paddle
from paddle import concat, nn  # a name bound at import: captured all the same


class _SE(nn.Layer):
    def __init__(self, c):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.reduce = nn.Conv2D(c, c // 2, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2D(c // 2, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return paddle.multiply(x=x, y=self.gate(self.expand(self.relu(self.reduce(self.pool(x))))))


class SmallLCNet(nn.Layer):
    """PP-LCNet's parts: conv-BN-hardswish, a split and concat (channel halves swapped), a
    squeeze-excite multiply, a residual ``+``, Paddle's
    downscale-in-infer dropout (a scale by 1 - p at inference), flatten and a [in, out] Linear; a
    sublayer named with a leading ``_``."""

    def __init__(self):
        super().__init__()
        self._stem = nn.Sequential(nn.Conv2D(3, 8, 3, stride=2, padding=1, bias_attr=False), nn.BatchNorm2D(8),
                                   nn.Hardswish())
        self.dw = nn.Conv2D(8, 8, 5, padding=2, groups=8)
        self.se = _SE(8)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(p=0.2, mode="downscale_in_infer")
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self._stem(x)
        a, b = paddle.split(x, 2, axis=1)
        x = concat([b, a], axis=1)
        x = self.se(self.dw(x)) + x
        return self.fc(self.flatten(self.dropout(self.pool(x))))


def randomized(net):
    """Non-trivial BN statistics and affine terms, so that every tensor's mapping shows."""
    rng = np.random.default_rng(0)
    for k, t in net.state_dict().items():
        if k.endswith(("_variance", "_mean")) or (len(t.shape) == 1 and k.endswith("weight")):
            lo = 0.5 if not k.endswith("_mean") else -0.2
            t.set_value(rng.uniform(lo, 1.5 if lo > 0 else 0.2, t.shape).astype(np.float32))
    return net.eval()


def build_small_lcnet():
    paddle.seed(0)
    return randomized(SmallLCNet())


class _Unknown(nn.Layer):
    """Two ops onespec has no equivalent for, in two places, and a value read into Python."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2D(3, 3, 1), nn.LogSigmoid())
        self.tail = nn.ELU()

    def forward(self, x):
        return self.tail(self.block(x))


class _Item(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 3, 1)

    def forward(self, x):
        y = self.conv(x)
        return y * float(y.mean().item())


def build_unknown():
    return _Unknown().eval()


def paddleclas(name: str):
    """A PaddleClas backbone by its factory name, random weights and BN statistics."""
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from libzoo import paddleclas_model

    paddle.seed(0)
    return randomized(paddleclas_model(name))


def build_pplcnet():
    """PaddleClas's PP-LCNet_x1_0 (not in onespec's zoo)."""
    return paddleclas("PPLCNet_x1_0")


class _Clip(paddle.autograd.PyLayer):
    """A straight-through relu (an op onespec has): its backward is not the forward's gradient."""

    @staticmethod
    def forward(ctx, x):
        return paddle.nn.functional.relu(x)

    @staticmethod
    def backward(ctx, g):
        return g


class _Custom(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 3, 1)

    def forward(self, x):
        return _Clip.apply(self.conv(x))
