"""Framework-free accounting: trainable parameters, non-trainable state, MACs, per node."""
from __future__ import annotations

from dataclasses import dataclass

from .model import ModelSpec, NodeInfo, output_of, trace
from .nodes import Shape


@dataclass(frozen=True)
class Analysis:
    """``params``: trainable parameters (what papers and torchvision report);
    ``state``: non-trainable tensors (BatchNorm running mean/var), which Paddle and MindSpore
    list among their parameters and torch keeps as buffers; ``macs``: multiply-accumulates of
    convolutions and linear layers for one sample."""
    name: str
    input_shape: Shape
    output_shape: Shape
    params: int
    state: int
    macs: int
    rows: tuple[NodeInfo, ...]

    def shapes(self) -> dict[str, Shape]:
        """Output shape (without batch) of every node path."""
        return {r.path: r.out_shape for r in self.rows}

    def to_dict(self) -> dict:
        return {
            "name": self.name, "input_shape": list(self.input_shape), "output_shape": list(self.output_shape),
            "params": self.params, "state": self.state, "macs": self.macs,
            "nodes": [{"path": r.path, "op": r.op, "depth": r.depth, "in_shape": list(r.in_shape),
                       "out_shape": list(r.out_shape), "params": r.params, "state": r.state, "macs": r.macs}
                      for r in self.rows],
        }


def analyze(spec: ModelSpec) -> Analysis:
    rows = tuple(trace(spec))
    out = output_of(spec, list(rows))
    return Analysis(spec.name, tuple(spec.input_shape), out, sum(r.params for r in rows),
                    sum(r.state for r in rows), sum(r.macs for r in rows), rows)
