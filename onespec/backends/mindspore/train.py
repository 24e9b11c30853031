"""Training session on an emitted MindSpore network: the pieces ``onespec.training`` needs.

Conventions translated here: PYNATIVE mode, synchronous on CPU (``pynative_synchronize``, set
like the mode for the process: MindSpore's launch queue slows a CPU training step and is left
out only if no op has gone through it yet; ``onespec.backends.mindspore.emit.Network``);
gradients from ``mindspore.value_and_grad`` over the
trainable parameters only; ``requires_grad=False`` and ``set_train(False)`` for frozen subtrees
(their BatchNorm moving statistics stay fixed too; ``set_train(True)`` on the root would reset
them, so frozen cells are switched back after it); parameters updated with ``ops.assign``;
dropout seeded through ``mindspore.set_seed``; under ``msrun`` gradients and loss are averaged with
``ops.AllReduce`` (CPU collectives work in MindSpore 2.10).
"""
from __future__ import annotations

import contextlib

import numpy as np
import mindspore as ms
from mindspore import ops

from ..tree import under
from .emit import blocking_switch
from .weights import native_names


class Session:
    sqrt = staticmethod(ops.sqrt)
    zeros_like = staticmethod(ops.zeros_like)

    def __init__(self, net, spec, trainable: list[str], frozen_paths: tuple[str, ...]):
        ms.set_context(mode=ms.PYNATIVE_MODE)
        if ms.get_context("device_target") == "CPU" and (blocking := blocking_switch()) is not None:
            blocking(True)
        self.net = net
        names = native_names(spec)
        own = dict(net.parameters_and_names())
        self.params = {c: own[names[c]] for c in trainable}
        keep = {id(p) for p in self.params.values()}
        for _, p in net.parameters_and_names():
            if p.requires_grad and id(p) not in keep:
                p.requires_grad = False
        self.frozen = [c for path, c in net.cells_and_names() if path and under(path, frozen_paths)]
        self._weights = list(self.params.values())

        def loss_fn(x, target):
            logits = net(x)
            return -(target * ops.log_softmax(logits, axis=1)).sum(1).mean(), logits

        self._grad = ms.value_and_grad(loss_fn, None, self._weights, has_aux=True)
        self.world = 1
        try:  # launched by msrun: average over the workers
            from mindspore.communication import get_group_size
            self.world = get_group_size()
        except Exception:  # no communication group initialised: one process
            pass
        self._allreduce = ops.AllReduce() if self.world > 1 else None

    def seed(self, s: int) -> None:
        ms.set_seed(s)

    def set_train(self, flag: bool) -> None:
        self.net.set_train(flag)
        for c in self.frozen:
            c.set_train(False)

    def step_grads(self, x: np.ndarray, target: np.ndarray):
        (loss, logits), grads = self._grad(ms.Tensor(x), ms.Tensor(target))
        if self._allreduce is not None:  # the global batch's mean loss and gradient
            loss = self._allreduce(loss) / self.world
            grads = [self._allreduce(g) / self.world for g in grads]
        return float(loss.asnumpy()), logits.asnumpy(), dict(zip(self.params, grads))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.net(ms.Tensor(x)).asnumpy()

    def sumsq(self, t) -> float:
        return float((t * t).sum().asnumpy())

    def assign(self, p, value) -> None:
        ops.assign(p, value)

    def no_grad(self):
        return contextlib.nullcontext()

    def tensor(self, a: np.ndarray):
        return ms.Tensor(np.ascontiguousarray(a))

    def numpy(self, t) -> np.ndarray:
        return np.array(t.asnumpy())
