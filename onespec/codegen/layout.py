"""Block kinds of a spec and the text of the generated file.

A *kind* is a combinator subtree's structure: its op, its children's names and kinds (a leaf's
kind is its op, its rank and the argument names of its constructor call). Each kind with several
instances, and every parallel, scale or shift-max, becomes one class; a sequence that occurs once
is written in place as the file's ``Sequential`` of named layers. A *slot* is one value a kind's
constructor needs (an argument of a layer's call, a value a nested block's constructor takes, a
value its forward reads); slots whose values are the same in every instance are written as
literals, and slots that always agree with each other become one constructor argument.
"""
from __future__ import annotations

import keyword
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import OnespecError
from ..backends.tree import fresh_inputs
from ..spec import ModelSpec, trace
from ..spec.nodes import Sequential

WIDTH = 100
_NODEFAULT = object()



@dataclass(frozen=True)
class Code:
    """Source text written as is (a class name, a parameter name)."""
    text: str

    def __repr__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Arg:
    label: str
    value: Any
    keyword: bool = False
    default: Any = _NODEFAULT


@dataclass(frozen=True)
class Call:
    """A layer's constructor call: ``ctor(*args)``, with the prelude helpers it needs."""
    ctor: str
    args: tuple[Arg, ...] = ()
    helpers: tuple[str, ...] = ()


@dataclass
class Kind:
    sig: tuple
    op: str
    paths: list[str] = field(default_factory=list)
    cls: str = ""
    params: list[tuple[str, tuple]] = field(default_factory=list)  # (name, value per instance)
    slots: dict[tuple, Any] = field(default_factory=dict)  # slot -> Code(param) or a literal
    labels: dict[str, str] = field(default_factory=dict)  # param -> what its value is


NUM_CLASSES = Code("num_classes")
COMBINATORS = frozenset({"seq", "parallel", "scale", "shift_max", "graph"})


def one(v):
    """An int where every entry of a tuple is that int (``3`` for ``(3, 3)``)."""
    t = tuple(v) if not isinstance(v, int) else (v,)
    return t[0] if len(set(t)) == 1 else t


def symmetric_padding(n, x, path: str):
    """A conv's or pool's padding per spatial dim for input ``x`` (one int where all agree)."""
    pads = n.pads(x)
    check_supported(all(b == a for b, a in pads), path, "padding that differs before and after")
    return one(tuple(b for b, _ in pads))


def lit(v) -> str:
    if isinstance(v, float):
        # 0.0003 for the 0.00029999999999996696 a subtraction left (BN momentum 1 - 0.9997): the
        # two differ far below float32's precision
        short = float(f"{v:.12g}")
        return repr(short if abs(short - v) <= 1e-12 * abs(v) else float(v))
    return repr(v)


class Model:
    """The spec's nodes, shapes, kinds and the backend's calls."""

    def __init__(self, spec: ModelSpec, ops):
        self.spec, self.ops = spec, ops
        rows = trace(spec)
        self.shape = {r.path: r.in_shape for r in rows}
        self.node = {r.path: r.node for r in rows}
        self.helpers: list[str] = []
        # layers whose input is a new tensor only they read (``new``; ``fresh``: and whose maker
        # keeps no output for its backward), as the builds' sequences mark them: a backend may
        # mirror a build's in-place kernel there
        self.fresh, self.new = self._fresh(rows, True), self._fresh(rows, False)
        nc = spec.meta.num_classes
        heads = [r.path for r in rows if r.op in ("linear", "conv") and r.out_shape[0] == nc]
        self.head = heads[-1] if nc and heads else None
        self.kinds: dict[tuple, Kind] = {}
        self.kind_of: dict[str, Kind] = {}
        for layer in spec.layers:
            self._sig(layer, layer.name)
        for kind in self.kinds.values():
            if kind.op == "seq" and len(kind.paths) < 2:
                for p in kind.paths:
                    del self.kind_of[p]
        self.classes = [k for k in self.kinds.values() if k.paths[0] in self.kind_of]

    def _fresh(self, rows, autograd: bool) -> set[str]:
        seqs = [(r.path + ".", r.node) for r in rows if r.op == "seq"]
        if not self.spec.wired:
            seqs.append(("", Sequential.model_construct(name="network", layers=self.spec.layers)))
        return {f"{prefix}{c.name}" for prefix, n in seqs
                for c, yes in zip(n.layers, fresh_inputs(n, autograd=autograd)) if yes}

    def call(self, path: str) -> Call:
        c = self.ops.leaf(self.node[path], self.shape[path], path, path in self.fresh, path in self.new)
        for h in c.helpers:
            if h not in self.helpers:
                self.helpers.append(h)
        if path == self.head:
            c = Call(c.ctor, tuple(Arg(a.label, NUM_CLASSES, a.keyword, a.default)
                                   if a.label in ("out_channels", "out_features") else a for a in c.args), c.helpers)
        return c

    def _sig(self, n, path: str) -> tuple:
        if n.op == "merge":  # written inline in its graph's forward: no layer, no name of its own
            return (n.op, n.mode, merge_dim(n, self.shape[path]))
        if n.is_leaf:
            c = self.call(path)
            return (n.op, len(self.shape[path]), tuple(a.label for a in c.args))
        own = (n.merge, n.split is not None) if n.op == "parallel" else graph_wiring(n) if n.op == "graph" else ()
        sig = (n.op, own, tuple((None if c.op == "merge" else c.name, self._sig(c, f"{path}.{c.name}"))
                                for c in n.children()))
        kind = self.kinds.setdefault(sig, Kind(sig, n.op))
        kind.paths.append(path)
        self.kind_of[path] = kind
        return sig

    # -- slots ----------------------------------------------------------------------------
    def own_slots(self, path: str) -> list[tuple[tuple, Any]]:
        n, x = self.node[path], self.shape[path]
        if n.op == "parallel" and n.split is not None:
            return [(("", "split"), tuple(n.split))]
        if n.op == "shift_max":
            return [(("", "shape"), tuple(x)), (("", "groups"), n.groups), (("", "fusions"), n.fusions),
                    (("", "scale"), 2.0 * n.act_max), (("", "init_a"), tuple(n.init_a)),
                    (("", "init_b"), tuple(n.init_b))]
        return []

    def slots(self, path: str, rel: str = "") -> list[tuple[tuple, Any]]:
        """Every value the subtree at ``path`` needs, keyed by (relative child path, label)."""
        out = [] if rel else self.own_slots(path)
        return out + self.child_slots(self.node[path], path, rel)

    def child_slots(self, parent, path: str, rel: str) -> list[tuple[tuple, Any]]:
        out = []
        for c in (parent.children() if parent is not None else self.spec.layers):
            cp, cr = f"{path}.{c.name}" if path else c.name, f"{rel}{c.name}"
            if skipped(parent, c):
                continue
            if c.is_leaf:
                call = self.call(cp)
                out.append(((cr, "layer"), Code(call.ctor)))
                out += [((cr, a.label), a.value) for a in call.args]
            elif cp in self.kind_of:
                k = self.kind_of[cp]
                i = k.paths.index(cp)
                out += [((cr, name), vals[i]) for name, vals in k.params]
            else:
                out += self.slots(cp, cr + ".")
        return out

    def label(self, path: str, key: tuple) -> str:
        """What a slot of the block at ``path`` holds: its argument's name, shortened, or what
        the nested block's argument holds."""
        rel, label = key
        nested = self.kind_of.get(f"{path}.{rel}") if rel else None
        if nested is not None and label in nested.labels:
            return nested.labels[label]
        return _SHORT.get(label, label)

    def resolve_kinds(self) -> None:
        """Parameters of each class kind, innermost first (a kind's slots read its children's)."""
        for kind in sorted(self.classes, key=lambda k: height(k.sig)):
            per = [dict(self.slots(p)) for p in kind.paths]
            keys = list(per[0])
            by_vector: dict[tuple, str] = {}
            names: list[str] = []
            for key in keys:
                vec = tuple(d[key] for d in per)
                if len(set(map(repr, vec))) == 1 and vec[0] != NUM_CLASSES:
                    kind.slots[key] = vec[0]
                    continue
                if vec not in by_vector:
                    by_vector[vec] = param_name(key, self.label(kind.paths[0], key), names)
                    names.append(by_vector[vec])
                    kind.params.append((by_vector[vec], vec))
                    kind.labels[by_vector[vec]] = self.label(kind.paths[0], key)
                kind.slots[key] = Code(by_vector[vec])


def height(sig: tuple) -> int:
    """Nesting depth below a kind: a combinator's signature is (op, own fields, (name, sig)...)."""
    return 1 + max((height(s) for _, s in sig[2]), default=0) if sig[0] in COMBINATORS else 0


def skipped(parent, child) -> bool:
    """An identity branch of an unsplit parallel is its input itself, and a graph's merge an
    expression of its forward: no layer is made for either (``parent`` None: the network)."""
    if child.op == "merge":
        return True
    return parent is not None and parent.op == "parallel" and parent.split is None and child.op == "identity"


def merge_dim(n, shapes) -> int:
    """The batched dim a merge concatenates along (its inputs' rank from their first shape)."""
    return n.axis % len(shapes[0]) + 1


def variadic(g) -> bool:
    """A graph of several inputs whose first node concatenates them all, in order, and that
    reads them nowhere else (DenseNet's layers): its forward takes ``*xs`` whatever their number."""
    ins, refs = g.input_names(), g.refs()
    return (len(ins) > 1 and g.nodes[0].op == "merge" and g.nodes[0].mode == "concat" and refs[0] == ins
            and not any(set(r) & set(ins) for r in refs[1:]))


def graph_wiring(g) -> tuple:
    """A graph's wiring by position (its merges' names and a variadic graph's input count
    aside), so that graphs alike but for those are one kind."""
    ins, refs = g.input_names(), g.refs()
    if variadic(g):  # the inputs by position after them: the first node's
        order = [""] + [n.name for n in g.nodes]
        wiring = [("*",)] + [tuple(order.index(r) for r in rs) for rs in refs[1:]]
        return ("*", tuple(wiring), tuple(order.index(o) for o in g.output_names()))
    order = ins + [n.name for n in g.nodes]
    return (len(ins), tuple(tuple(order.index(r) for r in rs) for rs in refs),
            tuple(order.index(o) for o in g.output_names()))


_SHORT = {"out_channels": "channels", "out_features": "features", "num_features": "channels",
          "kernel_size": "kernel"}


def param_name(key: tuple, label: str, taken: list[str]) -> str:
    """A constructor argument's name: ``in_channels`` for the block's input, else the child's name
    and what the value is (``squeeze_channels``, ``expand_stride``)."""
    rel, own = key
    child = rel.replace(".", "_")
    name = label if label in ("in_channels", "in_features") and not taken or not child else f"{child}_{label}"
    if name in taken and own not in taken and own != label:  # a nested block's own name for it
        name = own
    name = re.sub(r"\W", "_", name).strip("_") or "value"
    if keyword.iskeyword(name) or name in ("self", "x", "num_classes") or name[0].isdigit():
        name = f"v_{name}"
    out, i = name, 2
    while out in taken:
        out, i = f"{name}{i}", i + 1
    return out


def render(spec: ModelSpec, ops) -> str:
    from .text import write
    m = Model(spec, ops)
    m.resolve_kinds()
    name_classes(m)
    return write(m)


def camel(name: str) -> str:
    stem = re.sub(r"\d+$", "", name).strip("_") or "block"
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"_+", stem) if p)


def name_classes(m: Model) -> None:
    taken = set(m.ops.RESERVED)
    for kind in m.classes:
        names = [p.rsplit(".", 1)[-1] for p in kind.paths]
        common = re.sub(r"[^A-Za-z]+$", "", os.path.commonprefix(names))
        kids = m.node[kind.paths[0]].children()
        if kind.op == "seq" and len(kids) <= 3 and all(c.is_leaf for c in kids):
            base = camel("_".join(re.sub(r"\d+$", "", c.name) for c in kids))  # ConvBnRelu
        else:
            base = camel(common if len(common) >= 3 else max(set(names), key=names.count))
        name, i = base, 2
        while name in taken:
            name, i = f"{base}{i}", i + 1
        taken.add(name)
        kind.cls = name


def conventions(spec: ModelSpec, ops) -> list[str]:
    """The backend's translated conventions that concern the ops ``spec`` uses."""
    used = set()
    for r in trace(spec):
        used.add(r.op)
        if r.op == "batchnorm" and len(r.in_shape) == 4:
            used.add("batchnorm3d")
    return [text for about, text in ops.CONVENTIONS if not about or used & set(about)]


def check_supported(ok: bool, path: str, what: str) -> None:
    if not ok:
        raise OnespecError(f"codegen: {path}: {what} has no generated form yet; onespec's own build runs it")
