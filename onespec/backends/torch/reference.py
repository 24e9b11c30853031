"""The float64 autograd reference of ``onespec diff`` (train-mode forward and backward, which the
numpy evaluator cannot give): onespec's torch build of a spec in float64, with a float32 twin
that says how far float32 alone takes each node's outputs, gradients and running statistics.

The contract's optional ``reference`` module: ``Reference(spec, state)`` with the methods below;
``onespec.conformance.diff`` uses the first framework that ships one.
"""
from __future__ import annotations

import numpy as np

from . import runtime
from .emit import build
from .weights import get_state, load_state


class Reference:
    def __init__(self, spec, state):
        self.spec = spec
        self.net, self.net32 = build(spec), build(spec)
        for m in (*self.net.modules(), *self.net32.modules()):  # output-gradient hooks need every output kept
            if getattr(m, "inplace", False):
                m.inplace = False
        self.reload(state)

    def reload(self, state) -> None:
        """Both networks back to ``state`` (a train-mode forward moves running statistics)."""
        load_state(self.net, self.spec, state)
        self.net.double()
        load_state(self.net32, self.spec, state)

    def state(self) -> dict[str, np.ndarray]:
        return get_state(self.net, self.spec)

    def state32(self) -> dict[str, np.ndarray]:
        return get_state(self.net32, self.spec)

    def node_io(self, x, train):
        return runtime.node_io(self.net, np.asarray(x, np.float64), train=train)

    def run_node(self, path, x, train):
        return runtime.run_node(self.net, path, np.asarray(x, np.float64), train=train)

    def vjp(self, path, x, gy, train):
        return runtime.node_vjp(self.net, self.spec, path, np.asarray(x, np.float64), np.asarray(gy, np.float64), train)

    def node_io32(self, x, train):
        return runtime.node_io(self.net32, np.asarray(x, np.float32), train=train)

    def run_node32(self, path, x, train):
        return runtime.run_node(self.net32, path, np.asarray(x, np.float32), train=train)

    def vjp32(self, path, x, gy, train):
        return runtime.node_vjp(self.net32, self.spec, path, np.asarray(x, np.float32), np.asarray(gy, np.float32),
                                train)

    def output_grads(self, x, r, train):
        return runtime.output_grads(self.net, np.asarray(x, np.float64), np.asarray(r, np.float64), train)
