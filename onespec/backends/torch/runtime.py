"""Counting and instrumented inference on emitted torch networks."""
from __future__ import annotations

import numpy as np
import torch


def count(net) -> tuple[int, int]:
    """(trainable parameters, non-trainable state). State = BN running mean/var; torch's
    ``num_batches_tracked`` counter is bookkeeping, not state of the function, and is excluded."""
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    state = sum(b.numel() for n, b in net.named_buffers() if not n.endswith("num_batches_tracked"))
    return trainable, state


def _sample_shape(o) -> tuple:
    """Output shape without batch; a tuple of them for a network's several outputs."""
    return tuple(_sample_shape(t) for t in o) if isinstance(o, (tuple, list)) else tuple(o.shape[1:])


def _arrays(y):
    """The output as numpy: a tuple of arrays for several outputs, in the network's order."""
    return tuple(t.numpy() for t in y) if isinstance(y, (tuple, list)) else y.numpy()


def forward(net, x: np.ndarray, record_shapes: bool = False):
    """Eval-mode forward. Returns (output array, {module path: output shape without batch})."""
    shapes: dict[str, tuple] = {}
    handles = []
    if record_shapes:
        for path, mod in net.named_modules():
            if path:
                handles.append(mod.register_forward_hook(
                    lambda m, i, o, path=path: shapes.__setitem__(path, _sample_shape(o))))
    net.eval()
    try:
        with torch.no_grad():
            y = net(torch.from_numpy(x))
    finally:
        for h in handles:
            h.remove()
    return _arrays(y), shapes


def static_forward(net, x: np.ndarray) -> np.ndarray:
    """Eval-mode forward of the ``torch.export`` program (graph capture, no Python per call)."""
    net.eval()
    with torch.no_grad():
        prog = torch.export.export(net, (torch.from_numpy(x),))
        return _arrays(prog.module()(torch.from_numpy(x)))


def param_names(net) -> list[str]:
    """Native names of all parameters and state tensors (what a checkpoint holds)."""
    return [n for n, _ in net.state_dict().items() if not n.endswith("num_batches_tracked")]


def train_step(net, x: np.ndarray, r: np.ndarray, lr: float) -> float:
    """One plain-SGD step in train mode on loss = sum(net(x) * r). Returns the loss."""
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:  # nothing to update; the train-mode forward still moves BN statistics
        with torch.no_grad():
            return float((net(torch.from_numpy(x)) * torch.from_numpy(r)).sum())
    opt = torch.optim.SGD(params, lr=lr)
    opt.zero_grad()
    loss = (net(torch.from_numpy(x)) * torch.from_numpy(r)).sum()
    loss.backward()
    opt.step()
    return float(loss.detach())


def node_io(net, x: np.ndarray, train: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{module path: (its input, its output)} for every module in one forward (eval or train
    mode), for ``onespec diff``. A float64 network takes a float64 ``x``."""
    io: dict[str, tuple] = {}
    seen: dict[str, np.ndarray] = {}
    # the input copied before the module runs: an in-place activation overwrites it
    handles = [h for p, m in net.named_modules() if p for h in (
        m.register_forward_pre_hook(lambda m, i, p=p: seen.__setitem__(p, i[0].detach().numpy().copy())),
        m.register_forward_hook(lambda m, i, o, p=p: io.__setitem__(p, (seen.pop(p), o.detach().numpy().copy()))))]
    net.train(train)
    try:
        with torch.no_grad():
            net(torch.from_numpy(x))
    finally:
        for h in handles:
            h.remove()
    return io


def run_node(net, path: str, x: np.ndarray, train: bool = False) -> np.ndarray:
    """Output of the module at ``path`` alone, on ``x`` (eval or train mode)."""
    net.train(train)
    with torch.no_grad():  # a copy: an in-place activation would overwrite the caller's array
        return net.get_submodule(path)(torch.tensor(np.asarray(x))).numpy()


def node_vjp(net, spec, path: str, x: np.ndarray, gy: np.ndarray, train: bool = False):
    """The module at ``path`` (``""``: the whole network) alone on ``x``, backward from output
    gradient ``gy``: (output, input gradient, {canonical tensor name: gradient}) for its trainable
    tensors. A float64 network (``net.double()``) is onespec's backward reference."""
    from ..tree import under
    from .weights import native_names

    mod = net.get_submodule(path) if path else net
    net.train(train)
    xt = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
    params = dict(net.named_parameters())
    for p in params.values():
        p.grad = None
    y = mod(xt.clone())  # not the leaf itself: an in-place activation may overwrite its input
    y.backward(torch.from_numpy(np.ascontiguousarray(gy)).to(y.dtype))
    grads = {c: (np.zeros(tuple(params[n].shape)) if params[n].grad is None else params[n].grad.numpy().copy())
             for c, n in native_names(spec).items()
             if n in params and params[n].requires_grad and (not path or under(c, (path,)))}
    return y.detach().numpy(), xt.grad.numpy().copy(), grads


def output_grads(net, x: np.ndarray, r: np.ndarray, train: bool = False) -> dict[str, np.ndarray]:
    """{module path: gradient of ``sum(net(x) * r)`` with respect to its output}: the per-node
    output gradients of ``onespec diff``'s float64 backward reference. An ``Identity`` returns its
    input tensor itself, so its entry is that tensor's whole gradient (diff skips identities)."""
    grads: dict[str, np.ndarray] = {}

    def keep(p):
        def hook(m, i, o):  # returns None: a forward hook's return value would replace the output
            o.register_hook(lambda g: grads.__setitem__(p, g.detach().numpy().copy()))
        return hook

    handles = [m.register_forward_hook(keep(p)) for p, m in net.named_modules() if p]
    net.train(train)
    try:
        y = net(torch.from_numpy(np.ascontiguousarray(x)))
        y.backward(torch.from_numpy(np.ascontiguousarray(r)).to(y.dtype))
    finally:
        for h in handles:
            h.remove()
    return grads
