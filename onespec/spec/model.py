"""``ModelSpec`` (a whole network) and the single graph walk that validates it, infers every
node's shape and accounts for parameters, state and MACs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from ..errors import SpecError, validation_message
from .nodes import Graph, Node, Shape, _Node, check_names


class ModelMeta(BaseModel):
    """Where an architecture comes from, and the knobs it was built with."""
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
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
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    name: str = Field(min_length=1, max_length=128)
    input_shape: tuple[StrictInt, ...]
    layers: list[Node]
    meta: ModelMeta
    inputs: dict[str, list[str]] = Field(default_factory=dict, description="top-level wiring, as in a graph node: "
                                         "the layers a layer reads (the input is 'x'); default the layer before")
    outputs: list[str] = Field(default_factory=list, description="the layers whose outputs the network returns, "
                                                                 "in order; default the last")

    @property
    def wired(self) -> bool:
        """The top-level layers form a graph (explicit inputs or outputs), not a sequence."""
        return bool(self.inputs or self.outputs)

    def root_graph(self) -> Graph:
        """The top-level layers as a graph node (for a wired spec); its name is no part of any path."""
        return Graph.model_construct(name="network", nodes=self.layers, inputs=self.inputs, outputs=self.outputs,
                                     input="x")

    @model_validator(mode="after")
    def _validate_graph(self) -> "ModelSpec":
        if len(self.input_shape) not in (1, 3, 4) or min(self.input_shape) < 1 or max(self.input_shape) > 1 << 20:
            raise SpecError("input_shape", "input", f"input_shape {self.input_shape} must be a positive "
                                                    "(C,), (C, H, W) or (C, D, H, W)")
        trace(self)
        return self

    @property
    def output_shape(self) -> Shape:
        return output_of(self, trace(self))


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
        return self.node.is_leaf


def _walk(node: _Node, x: Shape, path: str, depth: int, rows: list[NodeInfo]) -> Shape:
    """The one generic walk: pre-order rows; combinators recurse through ``visit``."""
    idx = len(rows)
    rows.append(None)  # type: ignore[arg-type]  # placeholder keeps pre-order

    def visit(child: _Node, xi: Shape) -> Shape:
        return _walk(child, xi, f"{path}.{child.name}", depth + 1, rows)

    y = node.walk(x, path, visit)
    if depth and _several(y):
        raise SpecError(path, "graph", _SEVERAL)
    p, s, m = node.counts(x, y)
    rows[idx] = NodeInfo(path, node.op, depth, x, y, p, s, m, node)
    return y


def trace(spec: ModelSpec) -> list[NodeInfo]:
    """Pre-order walk of all nodes with shapes and own counts. Raises :class:`SpecError`."""
    rows: list[NodeInfo] = []
    x = tuple(spec.input_shape)
    if not spec.layers:
        raise SpecError("", "empty", "a model needs at least one layer")
    check_names(spec.layers, "")
    if spec.wired:
        def visit(child: _Node, xi: Shape) -> Shape:
            y = _walk(child, xi, child.name, 0, rows)
            if _several(y):
                raise SpecError(child.name, "graph", "a graph with several outputs cannot be a layer of a wired "
                                                     "network; list its nodes' outputs in the network's outputs")
            return y
        spec.root_graph().walk(x, "", visit)
        return rows
    for i, layer in enumerate(spec.layers):
        x = _walk(layer, x, layer.name, 0, rows)
        if _several(x) and i < len(spec.layers) - 1:
            raise SpecError(layer.name, "graph", _SEVERAL)
    return rows


_SEVERAL = "a graph with several outputs must be the network's last top-level layer"


def _several(shape) -> bool:
    """A tuple of shapes: the outputs of a graph with several, which no node consumes."""
    return bool(shape) and isinstance(shape[0], tuple)


def output_of(spec: ModelSpec, rows: list[NodeInfo]) -> Shape:
    """The network's output shape from its walk: a tuple of shapes for several outputs."""
    if not spec.wired:
        return root_output(rows)
    top = {r.path: r.out_shape for r in rows if r.depth == 0}
    outs = spec.root_graph().output_names()
    return top[outs[0]] if len(outs) == 1 else tuple(top[o] for o in outs)


def root_output(rows: list[NodeInfo]) -> Shape:
    """The network's output shape: that of the last top-level node of a walk (a tuple of shapes
    for a network with several outputs)."""
    return next(r.out_shape for r in reversed(rows) if r.depth == 0)


def parse_spec(text: str | bytes) -> ModelSpec:
    """A ``ModelSpec`` from JSON text (a file from a user: untrusted). Raises :class:`SpecError`
    (rule ``document``) with pydantic's ``ValidationError`` as its cause, never anything else."""
    from pydantic import ValidationError

    if len(text) > 64 << 20:
        raise SpecError("", "document", f"spec document of {len(text):,} bytes exceeds 64 MiB")
    try:
        return ModelSpec.model_validate_json(text)
    except ValidationError as err:
        raise SpecError("", "document", validation_message(err)) from err
    except RecursionError as err:
        raise SpecError("", "document", "spec document nested too deeply") from err
