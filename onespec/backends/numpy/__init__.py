"""numpy backend: the float64 reference evaluator, behind the same contract as the frameworks."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ...spec import ModelSpec
from .emit import Module, build
from .runtime import count, forward, node_io, node_vjp, param_names, run_node, static_forward, train_step
from .weights import get_state, load, load_state, native_names, read, save

__all__ = ["Module", "build", "count", "evaluate", "forward", "get_state", "load", "load_state", "native_names", "node_io", "node_vjp",
           "param_names", "read", "save", "static_forward", "train_step"]

def evaluate(spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray, record_shapes: bool = False):
    """Eval-mode output (float64) of ``spec`` with canonical ``state`` on batch ``x``;
    with ``record_shapes``, also every node path's output shape."""
    net = build(spec)
    load_state(net, spec, state)
    y, shapes = forward(net, x, record_shapes)
    return (y, shapes) if record_shapes else y
