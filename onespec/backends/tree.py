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

    kids = [(layer.name, node(layer, layer.name)) for layer in spec.layers]
    if spec.wired:  # the top-level layers are a graph: its module is the network
        return table["graph"](spec.root_graph(), tuple(spec.input_shape), kids)
    return root(kids)


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


# ops whose output is a new tensor and that keep no output for their backward: the next node in a
# sequence may overwrite it in place, with autograd too
FRESH = frozenset({"conv", "conv_transpose", "batchnorm", "groupnorm", "layernorm", "linear", "maxpool", "avgpool",
                   "global_avgpool", "adaptive_avgpool", "upsample", "parallel", "scale", "shift_max"})
# ops whose output is a new tensor (an activation may keep its own for its backward): the next
# node may overwrite it where no gradient is wanted
NEW = FRESH | {"act", "hardsigmoid"}


def fresh(n, kinds=FRESH) -> bool:
    """``n``'s output is a new tensor of one of ``kinds`` (a seq: its last layer's; a one-branch
    parallel may return its input itself)."""
    if n.op == "seq":
        return bool(n.layers) and fresh(n.layers[-1], kinds)
    return n.op in kinds and not (n.op == "parallel" and len(n.branches) < 2)


def fresh_inputs(seq, autograd: bool = True) -> list[bool]:
    """Per layer of a seq node: whether its input is a new tensor that only it reads, and (with
    ``autograd``) that the layer before keeps no output for its backward."""
    kinds = FRESH if autograd else NEW
    return [False] + [fresh(prev, kinds) for prev in seq.layers[:-1]]


def fresh_branch(parallel):
    """Index of the first branch of a parallel node whose output is a new tensor that its maker
    keeps no copy of for its backward (an add may sum the other branches into it in place), or None."""
    return next((i for i, b in enumerate(parallel.branches) if fresh(b)), None)
