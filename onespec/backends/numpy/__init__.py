"""numpy backend: the float64 reference evaluator, behind the same contract as the frameworks."""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ...spec import ModelSpec
from .. import Framework
from .bench import bench_harness
from .emit import Module, build
from .host import apply_numerics, dist_end, dist_start, foreign_state, numerics_environment, session
from .runtime import count, forward, node_io, node_vjp, param_names, run_node, static_forward, train_step
from .weights import get_state, load, load_state, native_names, read, save

__all__ = ["FRAMEWORK", "Module", "apply_numerics", "bench_harness", "build", "count", "dist_end", "dist_start",
           "evaluate", "foreign_state", "forward", "get_state", "load", "load_state", "native_names", "node_io",
           "node_vjp", "numerics_environment", "param_names", "read", "run_node", "save", "session",
           "static_forward", "train_step"]

# canonical names and layouts; its checkpoint is the canonical ``.npz`` (``onespec.weights``)
FRAMEWORK = Framework(name="numpy", package="numpy", reference=True)


def evaluate(spec: ModelSpec, state: Mapping[str, np.ndarray], x: np.ndarray, record_shapes: bool = False):
    """Eval-mode output (float64) of ``spec`` with canonical ``state`` on batch ``x``;
    with ``record_shapes``, also every node path's output shape."""
    net = build(spec)
    load_state(net, spec, state)
    y, shapes = forward(net, x, record_shapes)
    return (y, shapes) if record_shapes else y
