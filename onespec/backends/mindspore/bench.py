"""``onespec bench`` on MindSpore: MindCV's ``create_model`` beside onespec's networks, both in
one run mode: "pynative" (MindSpore's asynchronous launch queue), "sync" (PYNATIVE with
``pynative_synchronize``: no launch queue) or "graph" (GRAPH_MODE)."""
from __future__ import annotations

import numpy as np
import mindspore as ms

from . import FRAMEWORK


class _Harness:
    def __init__(self, mode: str):
        ms.set_context(mode=ms.GRAPH_MODE if mode == "graph" else ms.PYNATIVE_MODE)
        if mode == "sync":  # each op runs before the next is dispatched (no launch queue)
            ms.set_context(pynative_synchronize=True)

    def reference(self, model):
        from mindcv.models import create_model
        return create_model(FRAMEWORK.bench_zoo[model], pretrained=False)

    def inputs(self, shape, batch):
        rng = np.random.default_rng(0)
        return (ms.Tensor(rng.standard_normal((batch, *shape)).astype(np.float32)),
                ms.Tensor(rng.integers(0, 1000, batch).astype(np.int32)))

    def forward(self, net, x):
        net.set_train(False)
        net(x).asnumpy()

    def stepper(self, net, x, y):
        from mindspore import nn
        loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
        train_net = nn.TrainOneStepCell(nn.WithLossCell(net, loss), nn.SGD(net.trainable_params(), learning_rate=1e-3))

        def step():
            train_net.set_train(True)
            train_net(x, y).asnumpy()
        return step


def bench_harness(mode: str = "pynative"):
    return _Harness(mode or "pynative")
