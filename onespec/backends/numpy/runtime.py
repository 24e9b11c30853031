"""Counting and inference on numpy networks (the same functions as every backend)."""
from __future__ import annotations

import numpy as np

from ...errors import OnespecError
from ..tree import tally


def count(net) -> tuple[int, int]:
    return tally((v.shape, tr) for _, v, tr in net.named_tensors())


def _sample_shape(o) -> tuple:
    """Output shape without batch; a tuple of them for a network's several outputs."""
    return tuple(_sample_shape(t) for t in o) if isinstance(o, (tuple, list)) else tuple(o.shape[1:])


def forward(net, x: np.ndarray, record_shapes: bool = False):
    """Eval-mode forward in float64. Returns (output, {module path: output shape without batch})."""
    shapes: dict[str, tuple] = {}
    hooks = [(m, lambda m, i, o, p=p: shapes.__setitem__(p, _sample_shape(o)))
             for p, m in net.named_modules() if p and record_shapes]
    for m, h in hooks:
        m.hooks.append(h)
    try:
        y = net(np.asarray(x, dtype=np.float64))
    finally:
        for m, h in hooks:
            m.hooks.remove(h)
    return y, shapes


def static_forward(net, x: np.ndarray) -> np.ndarray:
    """numpy has no compiled form; the eager forward is the program."""
    return forward(net, x)[0]


def param_names(net) -> list[str]:
    return [k for k, _, _ in net.named_tensors()]


def train_step(net, x, r, lr):
    raise OnespecError("the numpy backend is the float64 reference evaluator and has no autograd; "
                       "train in torch, paddle or mindspore")


def _eval_only(train: bool) -> None:
    if train:
        raise OnespecError("the numpy backend evaluates in eval mode only (no batch statistics, no autograd); "
                           "onespec diff's train-mode and backward reference is torch in float64")


def node_io(net, x: np.ndarray, train: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """float64 {module path: (its input, its output)} for every module: ``onespec diff``'s reference."""
    _eval_only(train)
    io: dict[str, tuple] = {}
    hooks = [(m, lambda m, i, o, p=p: io.__setitem__(p, (_first(i), np.array(o))))
             for p, m in net.named_modules() if p]
    for m, h in hooks:
        m.hooks.append(h)
    try:
        net(np.asarray(x, dtype=np.float64))
    finally:
        for m, h in hooks:
            m.hooks.remove(h)
    return io


def _first(x) -> np.ndarray:
    """A node's recorded input: a graph's merge reads several tensors, and records its first
    (as the framework backends' hooks do)."""
    return np.array(x[0] if isinstance(x, (list, tuple)) else x)


def run_node(net, path: str, x: np.ndarray, train: bool = False) -> np.ndarray:
    _eval_only(train)
    return dict(net.named_modules())[path](np.asarray(x, dtype=np.float64))


def node_vjp(net, spec, path, x, gy, train=False):
    raise OnespecError("the numpy backend has no autograd; onespec diff's backward reference is torch in float64")
