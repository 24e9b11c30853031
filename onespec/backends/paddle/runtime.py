"""Counting and instrumented inference on emitted Paddle networks."""
from __future__ import annotations

import numpy as np
import paddle

from ..tree import tally


def count(net) -> tuple[int, int]:
    """(trainable parameters, non-trainable state); Paddle lists BN running mean/var as
    non-trainable parameters."""
    return tally((p.shape, p.trainable) for p in net.parameters())


def _sample_shape(o) -> tuple:
    """Output shape without batch; a tuple of them for a network's several outputs."""
    return tuple(_sample_shape(t) for t in o) if isinstance(o, (tuple, list)) else tuple(o.shape[1:])


def _arrays(y):
    """The output as numpy: a tuple of arrays for several outputs, in the network's order."""
    return tuple(t.numpy() for t in y) if isinstance(y, (tuple, list)) else y.numpy()


def forward(net, x: np.ndarray, record_shapes: bool = False):
    """Eval-mode dygraph forward. Returns (output, {layer path: output shape without batch})."""
    shapes: dict[str, tuple] = {}
    handles = []
    if record_shapes:
        for path, layer in net.named_sublayers():
            handles.append(layer.register_forward_post_hook(
                lambda l, i, o, path=path: shapes.__setitem__(path, _sample_shape(o))))
    net.eval()
    try:
        with paddle.no_grad():
            y = net(paddle.to_tensor(x))
    finally:
        for h in handles:
            h.remove()
    return _arrays(y), shapes


def static_forward(net, x: np.ndarray) -> np.ndarray:
    """Eval-mode forward of the ``paddle.jit.to_static`` program."""
    net.eval()
    spec = [paddle.static.InputSpec(shape=[None, *x.shape[1:]], dtype="float32")]
    static = paddle.jit.to_static(net, input_spec=spec, full_graph=True)
    with paddle.no_grad():
        return _arrays(static(paddle.to_tensor(x)))


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


def node_io(net, x: np.ndarray, train: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer path: (its input, its output)} for every layer in one forward (eval or train mode),
    for ``onespec diff``."""
    io: dict[str, tuple] = {}
    seen: dict[str, np.ndarray] = {}
    # the input copied before the layer runs: in-place layers overwrite it
    handles = [h for p, layer in net.named_sublayers() for h in (
        layer.register_forward_pre_hook(lambda l, i, p=p: seen.__setitem__(p, np.array(i[0].numpy()))),
        layer.register_forward_post_hook(lambda l, i, o, p=p: io.__setitem__(p, (seen.pop(p), np.array(o.numpy())))))]
    net.train() if train else net.eval()
    try:
        with paddle.no_grad():
            net(paddle.to_tensor(x))
    finally:
        for h in handles:
            h.remove()
    return io


def run_node(net, path: str, x: np.ndarray, train: bool = False) -> np.ndarray:
    """Output of the layer at ``path`` alone, on ``x`` (eval or train mode)."""
    net.train() if train else net.eval()
    with paddle.no_grad():
        return dict(net.named_sublayers())[path](paddle.to_tensor(np.ascontiguousarray(x))).numpy()


def node_vjp(net, spec, path: str, x: np.ndarray, gy: np.ndarray, train: bool = False):
    """The layer at ``path`` (``""``: the whole network) alone on ``x``, backward from output
    gradient ``gy``: (output, input gradient, {canonical tensor name: gradient}) for its trainable
    tensors, Linear weights transposed back to the canonical [out, in]."""
    from ..tree import under
    from .weights import file_layout

    layer = dict(net.named_sublayers())[path] if path else net
    net.train() if train else net.eval()
    xt = paddle.to_tensor(np.ascontiguousarray(x, np.float32), stop_gradient=False)
    params = dict(net.named_parameters())
    for p in params.values():
        p.clear_gradient(False)
    y = layer(xt.clone())  # not the leaf itself: an in-place layer may overwrite its input
    (y * paddle.to_tensor(np.ascontiguousarray(gy, np.float32))).sum().backward()
    grads = {}
    for c, (n, transposed) in file_layout(spec).items():
        p = params.get(n)
        if p is None or p.stop_gradient or (path and not under(c, (path,))):
            continue
        g = np.zeros(p.shape, np.float32) if p.grad is None else np.array(p.grad.numpy())
        grads[c] = g.T.copy() if transposed else g
    return y.numpy(), np.array(xt.grad.numpy()), grads
