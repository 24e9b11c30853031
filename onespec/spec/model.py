"""``ModelSpec`` (a whole network) and the single graph walk that validates it, infers every
node's shape and accounts for parameters, state and MACs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import SpecError
from .nodes import COMBINATORS, Node, Shape, _Node, _need_rank


class ModelMeta(BaseModel):
    """Where an architecture comes from, and the knobs it was built with."""
    model_config = ConfigDict(extra="forbid", frozen=True)
    family: str
    paper: str = ""
    source: str = Field("", description="reference implementation whose structure is reproduced")
    num_classes: Optional[int] = None
    options: dict[str, Any] = Field(default_factory=dict, description="builder arguments, e.g. width")


class ModelSpec(BaseModel):
    """A network: an input shape (no batch dim) and top-level layers applied in order.

    Validation runs the full shape walk, so an invalid graph can never be constructed;
    the error names the node path and the broken rule.
    """
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    input_shape: tuple[int, ...]
    layers: list[Node]
    meta: ModelMeta

    @model_validator(mode="after")
    def _validate_graph(self) -> "ModelSpec":
        if len(self.input_shape) not in (1, 3, 4) or min(self.input_shape) < 1:
            raise SpecError("input_shape", "input", f"input_shape {self.input_shape} must be a positive "
                                                    "(C,), (C, H, W) or (C, D, H, W)")
        trace(self)
        return self

    @property
    def output_shape(self) -> Shape:
        return root_output(trace(self))


@dataclass(frozen=True)
class NodeInfo:
    """One node of the walk. ``params``/``state``/``macs`` are the node's own (0 for combinators)."""
    path: str
    op: str
    depth: int
    in_shape: Shape
    out_shape: Shape
    params: int
    state: int
    macs: int
    node: Any

    @property
    def is_leaf(self) -> bool:
        return self.op not in COMBINATORS


def _check_names(nodes: list[_Node], path: str) -> None:
    seen: set[str] = set()
    for n in nodes:
        if n.name in seen:
            raise SpecError(path, "name", f"two children are named {n.name!r}; module names must be unique")
        seen.add(n.name)


def _walk(node: _Node, x: Shape, path: str, depth: int, rows: list[NodeInfo]) -> Shape:
    idx = len(rows)
    rows.append(None)  # type: ignore[arg-type]  # placeholder keeps pre-order
    op = node.op
    if op == "seq":
        _check_names(node.layers, path)
        y = x
        for child in node.layers:
            y = _walk(child, y, f"{path}.{child.name}", depth + 1, rows)
    elif op == "parallel":
        _check_names(node.branches, path)
        if not node.branches:
            raise SpecError(path, "merge", "parallel needs at least one branch")
        inputs = [x] * len(node.branches)
        if node.split is not None:
            if len(node.split) != len(node.branches) or min(node.split) < 1 or sum(node.split) != x[0]:
                raise SpecError(path, "split", f"split {node.split} must give each of the {len(node.branches)} "
                                               f"branches >= 1 channel and sum to the {x[0]} input channels")
            inputs = [(c, *x[1:]) for c in node.split]
        outs = [(b.name, _walk(b, xi, f"{path}.{b.name}", depth + 1, rows)) for b, xi in zip(node.branches, inputs)]
        y = _merge(path, node.merge, outs)
    elif op == "shift_max":
        _need_rank(x, (3,), path, "shift_max")
        if node.groups < 1 or x[0] % node.groups:
            raise SpecError(path, "groups", f"shift groups={node.groups} must divide the {x[0]} channels")
        g = _walk(node.gate, x, f"{path}.{node.gate.name}", depth + 1, rows)
        if g != (2 * node.fusions * x[0],):
            raise SpecError(path, "gate", f"gate must give {2 * node.fusions * x[0]} coefficients "
                                          f"(2 x {node.fusions} fusion(s) x {x[0]} channels), got {g}")
        y = x
    elif op == "scale":
        g = _walk(node.gate, x, f"{path}.{node.gate.name}", depth + 1, rows)
        if len(g) != len(x) or g[0] != x[0] or any(gi not in (1, xi) for gi, xi in zip(g[1:], x[1:])):
            raise SpecError(path, "gate", f"gate output {g} does not broadcast over the input {x}")
        y = x
    else:
        y = node.infer(x, path)
    p, s, m = node.counts(x, y)
    rows[idx] = NodeInfo(path, op, depth, x, y, p, s, m, node)
    return y


def _merge(path: str, how: str, outs: list[tuple[str, Shape]]) -> Shape:
    first_name, first = outs[0]
    for name, o in outs[1:]:
        if how == "concat":
            if len(o) != len(first) or o[1:] != first[1:]:
                raise SpecError(path, "merge", f"cannot concat branch {name!r} {o} with {first_name!r} "
                                               f"{first}: non-channel dims differ")
        elif o != first:
            raise SpecError(path, "merge", f"cannot {how} branch {name!r} {o} with {first_name!r} {first}: "
                                           "shapes differ")
    if how == "concat":
        return (sum(o[0] for _, o in outs), *first[1:])
    return first


def trace(spec: ModelSpec) -> list[NodeInfo]:
    """Pre-order walk of all nodes with shapes and own counts. Raises :class:`SpecError`."""
    rows: list[NodeInfo] = []
    x = tuple(spec.input_shape)
    _check_names(spec.layers, "")
    for layer in spec.layers:
        x = _walk(layer, x, layer.name, 0, rows)
    return rows


def root_output(rows: list[NodeInfo]) -> Shape:
    """The network's output shape: that of the last top-level node of a walk."""
    return next(r.out_shape for r in reversed(rows) if r.depth == 0)
