"""Counting and instrumented inference on emitted MindSpore networks."""
from __future__ import annotations

import numpy as np
import mindspore as ms

from ..tree import tally


def count(net) -> tuple[int, int]:
    """(trainable parameters, non-trainable state); MindSpore lists BN moving mean/variance
    as parameters with ``requires_grad=False``."""
    return tally((p.shape, p.requires_grad) for _, p in net.parameters_and_names())


def _sample_shape(o) -> tuple:
    """Output shape without batch; a tuple of them for a network's several outputs."""
    return tuple(_sample_shape(t) for t in o) if isinstance(o, (tuple, list)) else tuple(o.shape[1:])


def _arrays(y):
    """The output as numpy: a tuple of arrays for several outputs, in the network's order."""
    return tuple(t.asnumpy() for t in y) if isinstance(y, (tuple, list)) else y.asnumpy()


def forward(net, x: np.ndarray, record_shapes: bool = False):
    """Eval-mode PYNATIVE forward. Returns (output, {cell path: output shape without batch})."""
    shapes: dict[str, tuple] = {}
    handles = []
    prev = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    if record_shapes:
        for path, cell in net.cells_and_names():
            if path:
                handles.append(cell.register_forward_hook(
                    lambda c, i, o, path=path: shapes.__setitem__(path, _sample_shape(o))))
    net.set_train(False)
    try:
        y = net(ms.Tensor(x))
    finally:
        for h in handles:
            h.remove()
        ms.set_context(mode=prev)
    return _arrays(y), shapes


def static_forward(net, x: np.ndarray) -> np.ndarray:
    """Eval-mode forward compiled in GRAPH_MODE (the whole construct parsed to one graph)."""
    prev = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    net.set_train(False)
    try:
        return _arrays(net(ms.Tensor(x)))
    finally:
        ms.set_context(mode=prev)


def param_names(net) -> list[str]:
    """Native names of all parameters and state tensors (what a checkpoint holds)."""
    return [n for n, _ in net.parameters_and_names()]


def train_step(net, x: np.ndarray, r: np.ndarray, lr: float) -> float:
    """One plain-SGD step in train mode on loss = sum(net(x) * r). Returns the loss."""
    from mindspore import nn

    prev = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    try:
        net.set_train(True)
        weight = ms.Tensor(r)
        if not net.trainable_params():  # nothing to update; the train-mode forward still moves BN statistics
            return float((net(ms.Tensor(x)) * weight).sum().asnumpy())
        opt = nn.SGD(net.trainable_params(), learning_rate=lr)

        def loss_fn(inp):
            return (net(inp) * weight).sum()

        loss, grads = ms.value_and_grad(loss_fn, None, opt.parameters)(ms.Tensor(x))
        opt(grads)
        return float(loss.asnumpy())
    finally:
        ms.set_context(mode=prev)


def node_io(net, x: np.ndarray, train: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """PYNATIVE {cell path: (its input, its output)} for every cell in one forward (eval or train
    mode), for ``onespec diff``."""
    io: dict[str, tuple] = {}
    prev = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    handles = [cell.register_forward_hook(lambda c, i, o, p=p: io.__setitem__(p, (i[0].asnumpy().copy(),
                                                                                  o.asnumpy().copy())))
               for p, cell in net.cells_and_names() if p]
    net.set_train(train)
    try:
        net(ms.Tensor(x))
    finally:
        for h in handles:
            h.remove()
        ms.set_context(mode=prev)
    return io


def run_node(net, path: str, x: np.ndarray, train: bool = False) -> np.ndarray:
    """PYNATIVE output of the cell at ``path`` alone, on ``x`` (eval or train mode)."""
    prev = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    net.set_train(train)
    try:
        return dict(net.cells_and_names())[path](ms.Tensor(np.ascontiguousarray(x))).asnumpy()
    finally:
        ms.set_context(mode=prev)


def node_vjp(net, spec, path: str, x: np.ndarray, gy: np.ndarray, train: bool = False):
    """PYNATIVE: the cell at ``path`` (``""``: the whole network) alone on ``x``, backward from
    output gradient ``gy``: (output, input gradient, {canonical tensor name: gradient}) for its
    trainable parameters (MindSpore's ``gamma``/``beta`` named back by role)."""
    from ..tree import under
    from .weights import native_names

    cell = dict(net.cells_and_names())[path] if path else net
    prev = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    net.set_train(train)
    try:
        canon = {n: c for c, n in native_names(spec).items() if not path or under(c, (path,))}
        params = [p for p in cell.trainable_params() if p.name in canon]
        sens = ms.Tensor(np.ascontiguousarray(gy, np.float32))

        def fn(inp):
            return (cell(inp) * sens).sum()

        y = cell(ms.Tensor(np.ascontiguousarray(x, np.float32)))
        dx, gparams = ms.grad(fn, grad_position=0, weights=params)(ms.Tensor(np.ascontiguousarray(x, np.float32)))
        grads = {canon[p.name]: g.asnumpy().copy() for p, g in zip(params, gparams)}
        return y.asnumpy(), dx.asnumpy().copy(), grads
    finally:
        ms.set_context(mode=prev)
