"""Training session on an emitted Paddle network: the pieces ``onespec.training`` needs from Paddle.

Conventions translated here: ``stop_gradient=True`` and eval mode for frozen subtrees (their
BatchNorm statistics stay fixed too); Paddle keeps Linear weights as [in, out], which the
element-wise update rules do not care about; gradients averaged over ``paddle.distributed``
ranks when launched with ``python -m paddle.distributed.launch``; dropout seeded through
``paddle.seed``.
"""
from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F

from ..tree import under
from .weights import native_names


class Session:
    sqrt = staticmethod(paddle.sqrt)
    zeros_like = staticmethod(paddle.zeros_like)

    def __init__(self, net, spec, trainable: list[str], frozen_paths: tuple[str, ...]):
        self.net = net
        names = native_names(spec)
        own = dict(net.named_parameters())
        self.params = {c: own[names[c]] for c in trainable}
        keep = {id(p) for p in self.params.values()}
        for p in net.parameters():
            p.stop_gradient = id(p) not in keep
        self.frozen = [m for path, m in net.named_sublayers() if under(path, frozen_paths)]
        import paddle.distributed as dist
        self.dist = dist.is_initialized() and dist.get_world_size() > 1

    def seed(self, s: int) -> None:
        paddle.seed(s)

    def set_train(self, flag: bool) -> None:
        self.net.train() if flag else self.net.eval()
        for m in self.frozen:
            m.eval()

    def step_grads(self, x: np.ndarray, target: np.ndarray):
        for p in self.params.values():
            p.clear_gradient(False)
        logits = self.net(paddle.to_tensor(x))
        loss = -(paddle.to_tensor(target) * F.log_softmax(logits, axis=1)).sum(1).mean()
        loss.backward()
        grads = {c: (p.grad if p.grad is not None else paddle.zeros_like(p)) for c, p in self.params.items()}
        loss = loss.detach()
        if self.dist:  # the global batch's mean loss and gradient, as one process would compute
            import paddle.distributed as dist
            world = dist.get_world_size()
            for t in (loss, *grads.values()):
                dist.all_reduce(t)
            loss = loss / world
            grads = {c: g / world for c, g in grads.items()}
        return float(loss.numpy()), logits.numpy(), grads

    def predict(self, x: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return self.net(paddle.to_tensor(x)).numpy()

    def sumsq(self, t) -> float:
        return float((t * t).sum().numpy())

    def assign(self, p, value) -> None:
        paddle.assign(value, output=p)

    def no_grad(self):
        return paddle.no_grad()

    def tensor(self, a: np.ndarray):
        return paddle.to_tensor(np.ascontiguousarray(a))

    def numpy(self, t) -> np.ndarray:
        return np.array(t.numpy())
