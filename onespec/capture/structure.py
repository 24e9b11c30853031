"""Captured leaves -> a spec that reads like the module: one node per module, named by its
attribute, nested as the modules nest. A module whose ops form a chain (each reads the one
before, nothing else reads them) is a sequence; anything else (skips, concatenations, several
inputs, several outputs) is a graph with explicit inputs. The spec's canonical tensor names are
then the module's own ``state_dict`` keys."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..spec import ModelMeta, ModelSpec
from ..spec import nodes as N
from ..spec.reserved import PRIVATE_NAMES, RESERVED_NAMES
from .ir import CaptureError, Leaf, Trace


@dataclass
class _Tree:
    """A module's region: its items (leaves and sub-modules) in execution order."""
    name: str
    path: str
    items: list = field(default_factory=list)
    closed: set = field(default_factory=set)

    def leaves(self):
        for it in self.items:
            yield from (it.leaves() if isinstance(it, _Tree) else [it])


def _name(leaf) -> str:
    return leaf.name if isinstance(leaf, _Tree) else leaf.path.rsplit(".", 1)[-1]


def _place(leaves: list[Leaf], problems: list[str]) -> None:
    """Final paths of loose ops (``<module>.\\0<export name>``): the module itself where it is
    that module's only op, else a child of it named by the export name."""
    _unnest_owners(leaves)
    owned = {lf.path for lf in leaves if "\0" not in lf.path}
    loose: dict[str, list[Leaf]] = {}
    for lf in leaves:
        if "\0" in lf.path:
            loose.setdefault(lf.path.split("\0")[0].rstrip("."), []).append(lf)
    taken = {lf.path for lf in leaves if "\0" not in lf.path}
    for module, lfs in loose.items():
        inside = any(p == module or p.startswith(module + ".") for p in owned | set(loose) - {module})
        if module and len(lfs) == 1 and not inside:
            lfs[0].path = module
            taken.add(module)
            continue
        for lf in lfs:
            base = lf.path.split("\0")[1]
            name, i = base, 1
            while f"{module}.{name}".lstrip(".") in taken or name in RESERVED_NAMES or name in PRIVATE_NAMES:
                name, i = f"{base}_op{i}", i + 1
            lf.path = f"{module}.{name}" if module else name
            taken.add(lf.path)


def _unnest_owners(leaves: list[Leaf]) -> None:
    """A module that owns an op's parameters and also runs other ops (timm's BatchNormAct2d: a
    batch norm whose ``act`` child runs after it) cannot be that op's node: the op becomes a child
    of the module named by its export name, its tensors aliased to the module's keys."""
    busy = set()  # modules with ops inside them: a loose op's module, every op's ancestors
    for lf in leaves:
        module = lf.path.split("\0")[0].rstrip(".") if "\0" in lf.path else None
        p = module if module is not None else lf.path
        busy |= {p.rsplit(".", i)[0] for i in range(1, p.count(".") + 1)} | ({module} if module else set())
    for lf in leaves:
        if "\0" not in lf.path and lf.path in busy and lf.params:
            lf.path = f"{lf.path}.\0{lf.out}"


def _tree(leaves: list[Leaf], problems: list[str]) -> _Tree:
    root = _Tree("", "")
    for lf in leaves:
        parts = lf.path.split(".")
        t = root
        for depth, part in enumerate(parts[:-1]):
            path = ".".join(parts[:depth + 1])
            last = t.items[-1] if t.items else None
            if isinstance(last, _Tree) and last.name == part:
                t = last
                continue
            if path in root.closed:
                problems.append(f"{path}: the module runs again after other modules ran (called twice, or "
                                f"its ops interleave with others'); a spec node runs once")
            root.closed.add(path)
            child = _Tree(part, path)
            t.items.append(child)
            t = child
        t.items.append(lf)
    return root


class _Flow:
    """Who makes and who reads each tensor."""

    def __init__(self, leaves: list[Leaf], outputs: list[str]):
        self.readers: dict[str, list[int]] = {}
        self.index = {id(lf): i for i, lf in enumerate(leaves)}
        for i, lf in enumerate(leaves):
            for t in lf.ins:
                self.readers.setdefault(t, []).append(i)
        self.outputs = set(outputs)

    def io(self, item) -> tuple[list[str], list[str]]:
        """(tensors the item reads from outside, in first-read order; tensors it makes that are
        read outside it or are network outputs, in order made)."""
        lfs = list(item.leaves()) if isinstance(item, _Tree) else [item]
        made = {lf.out for lf in lfs}
        mine = {self.index[id(lf)] for lf in lfs}
        ins = list(dict.fromkeys(t for lf in lfs for t in lf.ins if t not in made))
        outs = [lf.out for lf in lfs if lf.out in self.outputs
                or any(r not in mine for r in self.readers.get(lf.out, []))]
        return ins, outs


def _node(t: _Tree, flow: _Flow, problems: list[str]):
    """The spec node of module region ``t`` and its (inputs, outputs)."""
    kids, ios = [], []
    for it in t.items:
        if isinstance(it, _Tree):
            kid, io = _node(it, flow, problems)
        else:
            kid, io = _leaf_node(it, problems), flow.io(it)
        if len(io[1]) > 1:
            problems.append(f"{it.path}: the module's result is {len(io[1])} tensors used separately; a module "
                            f"inside the network must return one tensor")
        kids.append(kid)
        ios.append(io)
    ins, outs = flow.io(t)
    if kids and None not in kids:
        return _assemble(t.name or "network", t.items, kids, ios, ins, outs), (ins, outs)
    return None, (ins, outs)


def _leaf_node(lf: Leaf, problems: list[str]):
    try:
        return type(lf.node).model_validate({**lf.node.model_dump(), "name": _name(lf)})
    except ValueError as err:
        problems.append(f"{lf.path}: the name {_name(lf)!r} cannot be a spec node name ({str(err).splitlines()[-1]})")
        return None


def _is_chain(items, ios, ins, outs) -> bool:
    if len(ins) != 1 or len(outs) != 1:
        return False
    prev = ins[0]
    for it, (i, o) in zip(items, ios):
        reads = i if isinstance(it, _Tree) else it.ins
        if len(reads) != 1 or reads[0] != prev or len(o) != 1:
            return False
        prev = o[0]
    # each output read only by the next item: nothing skips ahead
    made_by = {o[0]: k for k, (_, o) in enumerate(ios)}
    for k, (i, _) in enumerate(ios):
        if made_by.get(i[0], k - 1) != k - 1:
            return False
    return prev == outs[0] and all(len(o) == 1 for _, o in ios) and _skipless(ios, outs)


def _skipless(ios, outs) -> bool:
    """No item's output is read by any item but the next (or is a network output mid-chain)."""
    reads = [set(i) for i, _ in ios]
    for k, (_, o) in enumerate(ios[:-1]):
        if any(o[0] in r for r in reads[k + 2:]) or o[0] in outs:
            return False
    return True


def _fork_join(name, items, kids, ios, ins, outs):
    """A parallel node where the module's items are branches that each read its one input (or the
    input itself, as a residual's skip) joined by a final merge: Inception's concatenation, a
    residual block whose body is one module. None where that is not exactly the module."""
    *branches, last = items
    if (len(ins) != 1 or len(outs) != 1 or isinstance(last, _Tree) or not isinstance(last.node, N.Merge)
            or last.out != outs[0] or last.node.mode not in ("concat", "add", "max")
            or (last.node.mode == "concat" and last.node.axis != 0)):
        return None
    made = [o[0] if len(o) == 1 else None for _, o in ios[:-1]]
    if any(i != ins for i, _ in ios[:-1]) or None in made or len(set(last.ins)) != len(last.ins):
        return None
    order = [made.index(t) if t in made else (-1 if t == ins[0] else None) for t in last.ins]
    if None in order or sorted(i for i in order if i >= 0) != list(range(len(branches))) or order.count(-1) > 1:
        return None
    if order.count(-1) and last.node.mode == "concat":
        return None
    names = {k.name for k in kids}
    skip = next(f"skip{i}" if i else "skip" for i in range(len(names) + 1) if (f"skip{i}" if i else "skip") not in names)
    layers = [N.Identity(name=skip) if i < 0 else kids[i] for i in order]
    if len(layers) < 2:
        return None
    return N.Parallel.model_construct(name=name, branches=layers, merge=last.node.mode, split=None)


def _assemble(name, items, kids, ios, ins, outs):
    if _is_chain(items, ios, ins, outs):
        return N.Sequential.model_construct(name=name, layers=kids)
    fork = _fork_join(name, items, kids, ios, ins, outs) if len(items) > 2 else None
    if fork is not None:
        return fork
    names = [k.name for k in kids]
    made = {o[0]: n for n, (_, o) in zip(names, ios) if o}
    for n, (_, o) in zip(names, ios):
        for t in o:
            made[t] = n
    inames = ["x"] if len(ins) == 1 else [f"in{i}" for i in range(len(ins))]
    while set(inames) & set(names):
        inames = [f"{n}_" for n in inames]
    ref = {**{t: n for t, n in zip(ins, inames)}, **made}
    wiring = {}
    prev = inames[0]
    for it, k, (i, _) in zip(items, kids, ios):
        reads = [ref[t] for t in (i if isinstance(it, _Tree) else it.ins)]
        if reads != [prev]:
            wiring[k.name] = reads
        prev = k.name
    return _GraphParts(name, kids, wiring, [ref[t] for t in outs], inames)


@dataclass
class _GraphParts:
    name: str
    nodes: list
    inputs: dict
    outputs: list
    input_names: list

    def node(self):
        outputs = [] if self.outputs == [self.nodes[-1].name] else self.outputs
        return N.Graph.model_construct(name=self.name, nodes=self.nodes, inputs=self.inputs, outputs=outputs,
                                       input=self.input_names[0] if len(self.input_names) == 1 else self.input_names)


def _finish(n):
    """Real pydantic nodes from the assembled parts (validated by the spec)."""
    if isinstance(n, _GraphParts):
        return N.Graph.model_validate({**n.node().model_dump(exclude={"nodes"}), "nodes": [_finish(k) for k in n.nodes]})
    if isinstance(n, N.Sequential):
        return N.Sequential.model_validate({"name": n.name, "op": "seq", "layers": [_finish(k) for k in n.layers]})
    if isinstance(n, N.Parallel):
        return N.Parallel.model_validate({"name": n.name, "op": "parallel", "merge": n.merge,
                                          "branches": [_finish(k) for k in n.branches]})
    return n


def build_spec(tr: Trace, name: str, input_shape, meta: ModelMeta) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    problems: list[str] = []
    leaves = _live(tr.leaves, tr.outputs)
    _place(leaves, problems)
    root = _tree(leaves, problems)
    flow = _Flow(leaves, tr.outputs)
    node, (ins, outs) = _node(root, flow, problems)
    if problems:
        raise CaptureError(sorted(set(problems), key=problems.index))
    if ins != [tr.input]:
        raise CaptureError([f"<root>: the network reads {ins}, expected its one input {tr.input}"])
    try:
        spec = _spec_of(tr, node, outs, name, input_shape, meta, _aliases(leaves, tr))
        return spec, _state(tr, leaves, spec)
    except ValueError as err:  # pydantic's ValidationError and SpecError alike
        raise CaptureError([f"the captured spec is not valid: {err}"]) from None


def _aliases(leaves: list[Leaf], tr: Trace) -> dict[str, str]:
    """canonical tensor name -> the module's key, where that key is neither the canonical name
    nor the framework's own name for the tensor's role (a bare parameter's node)."""
    out = {}
    for lf in leaves:
        own = {t.name: tr.roles.get(t.role, t.name) for t in lf.node.tensors(tr.shapes[lf.ins[0]])} \
            if tr.roles and lf.params else {}
        out.update({f"{lf.path}.{c}": key for c, key in lf.params.items() if key != f"{lf.path}.{own.get(c, c)}"})
    return out


def _state(tr: Trace, leaves: list[Leaf], spec: ModelSpec) -> dict[str, np.ndarray]:
    """The canonical state: each tensor in the shape its op declares (ConvNeXt's (C, 1, 1)
    layer_scale is the layer-scale op's (C,) gamma)."""
    from ..weights import layout

    shapes = {c: t.shape for c, t in layout(spec).items()}
    return {c: np.asarray(tr.state[key], np.float32).reshape(shapes[c])
            for c, key in ((f"{lf.path}.{c}", key) for lf in leaves for c, key in lf.params.items())}


def _spec_of(tr: Trace, node, outs, name, input_shape, meta, aliases) -> ModelSpec:
    outs_wanted = list(dict.fromkeys(tr.outputs))
    if isinstance(node, N.Sequential) and outs_wanted == outs:
        layers, wiring = [_finish(k) for k in node.layers], {}
    else:
        parts = node if isinstance(node, _GraphParts) else None
        if parts is None or parts.input_names != ["x"]:
            raise CaptureError(["<root>: the network's input cannot be named 'x' (a module has that name)"])
        by_tensor = dict(zip(outs, parts.outputs))
        layers, wiring = [_finish(k) for k in parts.nodes], {"inputs": parts.inputs,
                                                             "outputs": [by_tensor[t] for t in tr.outputs]}
    return ModelSpec(name=name, input_shape=tuple(input_shape), layers=layers, meta=meta, aliases=aliases, **wiring)


def _live(leaves: list[Leaf], outputs: list[str]) -> list[Leaf]:
    """The leaves the outputs depend on (an op whose result nothing reads is left out)."""
    need = set(outputs)
    keep = []
    for lf in reversed(leaves):
        if lf.out in need:
            keep.append(lf)
            need.update(lf.ins)
    return keep[::-1]
