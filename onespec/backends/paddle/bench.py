"""``onespec bench`` on Paddle: ``paddle.vision.models`` beside onespec's networks, timed alike."""
from __future__ import annotations

import paddle

from . import FRAMEWORK


class _Harness:
    def reference(self, model):
        import paddle.vision.models as zoo
        return getattr(zoo, FRAMEWORK.bench_zoo[model])()

    def inputs(self, shape, batch):
        return paddle.randn([batch, *shape]), paddle.randint(0, 1000, [batch])

    def forward(self, net, x):
        net.eval()
        with paddle.no_grad():
            net(x)

    def stepper(self, net, x, y):
        opt = paddle.optimizer.SGD(learning_rate=1e-3, parameters=net.parameters())

        def step():
            net.train()
            paddle.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
            opt.clear_grad()
        return step


def bench_harness(mode: str = ""):
    return _Harness()
