"""What a capture frontend hands to the framework-neutral rest of capture: the model's ops in
execution order, each an onespec op placed where its native module sits (:class:`Leaf`), the
tensors they exchange, and the model's own state under its own names (:class:`Trace`).

Each framework's frontend is its backend's ``trace(model, input_shape)``
(``onespec/backends/<fw>/capture.py``); ``structure`` nests the leaves into a spec. Path
conventions every frontend keeps:
- an op that owns parameters sits at the module that owns them (``features.0.weight`` ->
  ``features.0``) and ``params`` maps the op's canonical tensor name to the original key;
- a parameter-free op that is the only op of its module is that module (``relu``); a module
  called again gets ``_<n>`` on its name per call;
- any other op sits in the module whose forward ran it: ``<module path>.\0<tensor name>``
  (``structure`` names it);
- ``Trace.state`` holds each tensor under its original key in the canonical orientation (a
  Paddle Linear's [in, out] weight transposed to [out, in]); a key that is the framework's own
  name for the tensor's role (``Trace.roles``, its backend's ``FRAMEWORK.roles``: Paddle's
  ``_mean``) is no alias.

A frontend's op table builds each leaf as an :class:`Op`, returns ``DROP`` for an op that is the
identity at inference, and raises :class:`Unsupported` saying why an op has no onespec equivalent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import OnespecError


class CaptureError(OnespecError):
    """The module cannot be captured; every reason is listed with its module path and source line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(f"cannot capture the module ({len(problems)} problem{'s' * (len(problems) > 1)}):\n  "
                         + "\n  ".join(problems))


DROP = "drop"


class Unsupported(Exception):
    """This op cannot become an onespec op; the message says why."""


@dataclass
class Call:
    """One op as a frontend sees it (an intercepted call, a module's run, an export node): its
    arguments, its result, and ``shape(t)``: a tensor's sample shape (without the batch dim)."""
    args: tuple
    kwargs: dict
    out: Any
    shape: Callable

    def arg(self, i: int, name: str, default=None):
        if len(self.args) > i:
            return self.args[i]
        return self.kwargs.get(name, default)


@dataclass
class Op:
    """One leaf as an op table makes it: ``node`` (named later), the tensors it reads, the
    parameters it owns as (canonical tensor name, original key)."""
    node: Any
    ins: list
    params: list = field(default_factory=list)


class Then(list):
    """Ops a module runs one after another (Paddle's ``BatchNorm(act="relu")``): the first is the
    module's own (it owns the parameters); each later one reads the op before it (its input is the
    module's result tensor, named by the op before it when it is recorded) and sits beside the
    module in its parent."""


@dataclass
class Leaf:
    """One op: its path (module path of its native module), the onespec node (unnamed), the
    export names of the tensors it reads and makes, and its parameters (canonical -> key)."""
    path: str
    node: object
    ins: list[str]
    out: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Trace:
    leaves: list[Leaf]
    input: str
    outputs: list[str]
    state: dict[str, np.ndarray]           # original state_dict key -> value
    shapes: dict[str, tuple]               # export name -> sample shape
    roles: dict[str, str] = field(default_factory=dict)  # tensor role -> the framework's own name


def fuse_channel_norms(leaves: list[Leaf], outputs: list[str]) -> list[Leaf]:
    """permute (C,H,W -> H,W,C), layer norm over the last dim, permute back, each read only by
    the next: one layer norm over the channels (torchvision's LayerNorm2d, ConvNeXt's
    channels-first LayerNorm), a node where the norm's parameters put it."""
    from ..spec import nodes as N

    readers: dict[str, int] = {}
    for lf in leaves:
        for t in lf.ins:
            readers[t] = readers.get(t, 0) + 1
    out, i = [], 0
    while i < len(leaves):
        a, b, c = (leaves[i:i + 3] + [None, None])[:3]
        if (c is not None and isinstance(a.node, N.Permute) and a.node.dims == (1, 2, 0)
                and isinstance(b.node, N.LayerNorm) and b.node.last_axis and b.ins == [a.out]
                and isinstance(c.node, N.Permute) and c.node.dims == (2, 0, 1) and c.ins == [b.out]
                and readers.get(a.out) == 1 and readers.get(b.out) == 1 and a.out not in outputs
                and b.out not in outputs):
            norm = N.LayerNorm(name="op", eps=b.node.eps, affine=b.node.affine)
            out.append(Leaf(b.path, norm, a.ins, c.out, b.params))
            i += 3
            continue
        out.append(leaves[i])
        i += 1
    return out
