"""Counting and instrumented inference on emitted Paddle networks."""
from __future__ import annotations

import numpy as np
import paddle

from ..tree import tally


def count(net) -> tuple[int, int]:
    """(trainable parameters, non-trainable state); Paddle lists BN running mean/var as
    non-trainable parameters."""
    return tally((p.shape, p.trainable) for p in net.parameters())


def forward(net, x: np.ndarray, record_shapes: bool = False):
    """Eval-mode dygraph forward. Returns (output, {layer path: output shape without batch})."""
    shapes: dict[str, tuple] = {}
    handles = []
    if record_shapes:
        for path, layer in net.named_sublayers():
            handles.append(layer.register_forward_post_hook(
                lambda l, i, o, path=path: shapes.__setitem__(path, tuple(o.shape[1:]))))
    net.eval()
    try:
        with paddle.no_grad():
            y = net(paddle.to_tensor(x))
    finally:
        for h in handles:
            h.remove()
    return y.numpy(), shapes


def static_forward(net, x: np.ndarray) -> np.ndarray:
    """Eval-mode forward of the ``paddle.jit.to_static`` program."""
    net.eval()
    spec = [paddle.static.InputSpec(shape=[None, *x.shape[1:]], dtype="float32")]
    static = paddle.jit.to_static(net, input_spec=spec, full_graph=True)
    with paddle.no_grad():
        return static(paddle.to_tensor(x)).numpy()


def param_names(net) -> list[str]:
    """Native names of all parameters and state tensors (what a checkpoint holds)."""
    return list(net.state_dict().keys())


def train_step(net, x: np.ndarray, r: np.ndarray, lr: float) -> float:
    """One plain-SGD step in train mode on loss = sum(net(x) * r). Returns the loss."""
    net.train()
    params = [p for p in net.parameters() if p.trainable]
    if not params:  # nothing to update; the train-mode forward still moves BN statistics
        with paddle.no_grad():
            return float((net(paddle.to_tensor(x)) * paddle.to_tensor(r)).sum().numpy())
    opt = paddle.optimizer.SGD(learning_rate=lr, parameters=params)
    loss = (net(paddle.to_tensor(x)) * paddle.to_tensor(r)).sum()
    loss.backward()
    opt.step()
    opt.clear_grad()
    return float(loss.numpy())


def node_io(net, x: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Eval-mode {layer path: (its input, its output)} for every layer, for ``onespec diff``."""
    io: dict[str, tuple] = {}
    handles = [layer.register_forward_post_hook(
        lambda l, i, o, p=p: io.__setitem__(p, (np.array(i[0].numpy()), np.array(o.numpy()))))
        for p, layer in net.named_sublayers()]
    net.eval()
    try:
        with paddle.no_grad():
            net(paddle.to_tensor(x))
    finally:
        for h in handles:
            h.remove()
    return io


def run_node(net, path: str, x: np.ndarray) -> np.ndarray:
    """Eval-mode output of the layer at ``path`` alone, on ``x``."""
    net.eval()
    with paddle.no_grad():
        return dict(net.named_sublayers())[path](paddle.to_tensor(np.ascontiguousarray(x))).numpy()
