"""The one walk from a spec to a native module tree, shared by every backend.

A backend supplies one table ``EMIT[op]``: for a primitive op ``make(node, in_shape)``, for a
combinator ``make(node, in_shape, children)`` with ``children`` the ``(name, module)`` pairs of
``node.children()``, already emitted. This walk gives every native module the node's name, so
module paths equal spec node paths in all frameworks.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from ..errors import BackendUnavailableError
from ..spec import ModelSpec, trace


def emit(spec: ModelSpec, table: dict[str, Callable[..., Any]], root: Callable[[list], Any]):
    shapes = {r.path: r.in_shape for r in trace(spec)}

    def node(n, path: str):
        try:
            make = table[n.op]
        except KeyError:
            raise BackendUnavailableError(f"{path}: this backend has no emitter for op {n.op!r}") from None
        if n.is_leaf:
            return make(n, shapes[path])
        return make(n, shapes[path], [(c.name, node(c, f"{path}.{c.name}")) for c in n.children()])

    return root([(layer.name, node(layer, layer.name)) for layer in spec.layers])


def tally(tensors) -> tuple[int, int]:
    """(trainable, non-trainable) element counts of ``(shape, trainable)`` pairs."""
    counts = [0, 0]
    for shape, trainable in tensors:
        counts[0 if trainable else 1] += math.prod(shape)
    return counts[0], counts[1]


def ntuple(v, n: int) -> tuple[int, ...]:
    return (v,) * n if isinstance(v, int) else tuple(v)


def under(path: str, prefixes) -> bool:
    """``path`` is one of ``prefixes`` or a node inside one (``features`` covers ``features.b1.conv``)."""
    return any(path == p or path.startswith(p + ".") for p in prefixes)


# ops whose output is a new tensor that only the next node in a sequence reads: that node may
# overwrite it in place (none of them keeps its output for its backward)
FRESH = frozenset({"conv", "conv_transpose", "batchnorm", "groupnorm", "layernorm", "linear", "maxpool", "avgpool",
                   "global_avgpool", "adaptive_avgpool", "upsample", "parallel", "scale", "shift_max"})


def fresh(n) -> bool:
    """``n``'s output is a new tensor (a one-branch parallel may return its input itself)."""
    return n.op in FRESH and not (n.op == "parallel" and len(n.branches) < 2)


def fresh_inputs(seq) -> list[bool]:
    """Per layer of a seq node: whether its input is a new tensor that only it reads."""
    return [False] + [fresh(prev) for prev in seq.layers[:-1]]


def fresh_output(n) -> bool:
    """``n`` (a parallel's branch) ends in a new tensor: a fresh op, or a seq whose last layer is one."""
    return fresh(n) or (n.op == "seq" and bool(n.layers) and fresh_output(n.layers[-1]))
