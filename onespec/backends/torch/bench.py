"""``onespec bench`` on torch: torchvision's networks beside onespec's, timed alike."""
from __future__ import annotations

import torch

from . import FRAMEWORK
from .emit import speed_options


class _Harness:
    def reference(self, model):
        import torchvision
        return getattr(torchvision.models, FRAMEWORK.bench_zoo[model])(weights=None)

    def speed(self, net, ndim: int, **option):
        return speed_options(net, ndim, **option)

    def inputs(self, shape, batch):
        return torch.randn(batch, *shape), torch.randint(0, 1000, (batch,))

    def forward(self, net, x):
        net.eval()
        with torch.no_grad():
            net(x)

    def stepper(self, net, x, y):
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)

        def step():
            net.train()
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        return step


def bench_harness(mode: str = ""):
    return _Harness()
