"""Training session on an emitted torch network: the pieces ``onespec.training`` needs from torch.

Conventions translated here: ``requires_grad=False`` and eval mode for frozen subtrees (so their
BatchNorm statistics stay fixed too); gradients averaged over ``torch.distributed`` ranks when a
process group is initialised (``torchrun``); dropout seeded through ``torch.manual_seed``.
``precision="float64"`` trains the same network in double precision: ``onespec align``'s
yardstick, the same steps without float32 rounding.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..tree import under
from .weights import native_names

PRECISIONS = ("float32", "float64")  # what ``Session(precision=...)`` accepts
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Session:
    sqrt = staticmethod(torch.sqrt)
    zeros_like = staticmethod(torch.zeros_like)

    def __init__(self, net, spec, trainable: list[str], frozen_paths: tuple[str, ...], precision: str = "float32"):
        self.dtype = _DTYPES[precision]
        self.net = net.to(self.dtype)
        names = native_names(spec)
        own = dict(net.named_parameters())
        self.params = {c: own[names[c]] for c in trainable}
        keep = {id(p) for p in self.params.values()}
        for p in net.parameters():
            p.requires_grad_(id(p) in keep)
        self.frozen = [m for path, m in net.named_modules() if path and under(path, frozen_paths)]
        self.dist = torch.distributed.is_available() and torch.distributed.is_initialized()

    def seed(self, s: int) -> None:
        torch.manual_seed(s)

    def set_train(self, flag: bool) -> None:
        self.net.train(flag)
        for m in self.frozen:
            m.eval()

    def step_grads(self, x: np.ndarray, target: np.ndarray):
        """Train-mode forward and backward of mean soft-target cross-entropy."""
        for p in self.params.values():
            p.grad = None
        logits = self.net(torch.from_numpy(x).to(self.dtype))
        loss = -(torch.from_numpy(target).to(self.dtype) * F.log_softmax(logits, dim=1)).sum(1).mean()
        loss.backward()
        grads = {c: (p.grad if p.grad is not None else torch.zeros_like(p)) for c, p in self.params.items()}
        loss = loss.detach()
        if self.dist:  # the global batch's mean loss and gradient, as one process would compute
            world = torch.distributed.get_world_size()
            for t in (loss, *grads.values()):
                torch.distributed.all_reduce(t)
                t.div_(world)
        return float(loss), logits.detach().numpy(), grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.from_numpy(x).to(self.dtype)).numpy()

    def sumsq(self, t) -> float:
        return float((t.detach() * t.detach()).sum())

    def assign(self, p, value) -> None:
        with torch.no_grad():
            p.copy_(value)

    def no_grad(self):
        return torch.no_grad()

    def tensor(self, a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a))

    def numpy(self, t) -> np.ndarray:
        return t.detach().numpy().copy()
