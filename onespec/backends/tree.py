"""The one walk from a spec to a native module tree, shared by every backend.

A backend supplies one emitter per primitive op (``LEAVES[op](node, in_shape)``) and one
constructor per combinator; this walk gives every native module the node's name, so module
paths equal spec node paths in all frameworks.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Protocol

from ..spec import ModelSpec, trace


class Emitters(Protocol):
    LEAVES: dict[str, Callable[[Any, tuple], Any]]

    def sequential(self, named: list[tuple[str, Any]]) -> Any: ...
    def parallel(self, named: list[tuple[str, Any]], merge: str, split: list[int] | None) -> Any: ...
    def scale(self, name: str, gate: Any) -> Any: ...
    def shift_max(self, node: Any, gate: Any, in_shape: tuple) -> Any: ...


def emit(spec: ModelSpec, e: Emitters):
    shapes = {r.path: r.in_shape for r in trace(spec)}

    def node(n, path: str):
        def kids(children):
            return [(c.name, node(c, f"{path}.{c.name}")) for c in children]
        if n.op == "seq":
            return e.sequential(kids(n.layers))
        if n.op == "parallel":
            return e.parallel(kids(n.branches), n.merge, n.split)
        if n.op == "scale":
            return e.scale(n.gate.name, node(n.gate, f"{path}.{n.gate.name}"))
        if n.op == "shift_max":
            return e.shift_max(n, node(n.gate, f"{path}.{n.gate.name}"), shapes[path])
        try:
            leaf = e.LEAVES[n.op]
        except KeyError:
            raise NotImplementedError(f"{path}: this backend has no emitter for op {n.op!r}") from None
        return leaf(n, shapes[path])

    return e.sequential([(layer.name, node(layer, layer.name)) for layer in spec.layers])


def tally(tensors) -> tuple[int, int]:
    """(trainable, non-trainable) element counts of ``(shape, trainable)`` pairs."""
    counts = [0, 0]
    for shape, trainable in tensors:
        counts[0 if trainable else 1] += math.prod(shape)
    return counts[0], counts[1]


def ntuple(v, n: int) -> tuple[int, ...]:
    return (v,) * n if isinstance(v, int) else tuple(v)
