"""Importers from the zoos users already have: torchvision, timm, PaddleClas, MindCV and the
MindSpore model zoo: the engine that reads a library's checkpoint through a family's name map.

A library saves its checkpoints in one framework's format (``LIBRARIES``). The mapping is
explicit and per family: a model's registry entry names, per library, a :data:`Rule` written in
the family's own module (``onespec/zoo/squeezenet.py`` holds SqueezeNet's torchvision and
PaddleClas layouts, as timm keeps a family's ``checkpoint_filter_fn`` in the family file). A
rule rewrites each canonical tensor name (``features.fire2.squeeze.weight``) to the library's
module path (``features.3.squeeze.weight``) from the spec's own structure, read through
:class:`Tree`; the entry also names the model options the library's layout needs (timm's
SE-ResNets round SE widths: ``se_divisor=8``). The tensor's last name follows its framework's
convention by role (Paddle ``_mean``/``_variance``, MindSpore
``gamma``/``beta``/``moving_mean``/``moving_variance``; Paddle's Linear weight [in, out]), taken
from that framework's backend, the one place it is written. Names and shapes are checked both
ways; a tensor a library stores with trailing unit dims (a 1x1 conv standing for a Linear, a
Dense standing for a 1x1 conv) is reshaped, never anything else. It maps numpy arrays.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from .errors import OnespecError
from .spec import ModelSpec, trace
from .weights import StateError, check_state, layout

@dataclass(frozen=True)
class Library:
    """A model zoo whose checkpoints onespec reads: the framework that writes its files, and
    which of their keys are training bookkeeping rather than model tensors."""
    framework: str
    bookkeeping: str = r".*num_batches_tracked"


# what MindSpore's save_checkpoint of a training network adds beside the model's parameters
_MS_TRAINING = (r"(moments|accum|adam_m|adam_v|learning_rate|global_step|momentum|scale_sense|epoch_num|step_num|"
                r"current_iterator_step|last_overflow_iterator_step)(\..*)?")
LIBRARIES = {  # torch state_dicts (.pth), PaddleClas .pdparams, MindSpore .ckpt (the model zoo's: backbone + head)
    "torchvision": Library("torch"),
    "timm": Library("torch"),
    "paddleclas": Library("paddle"),
    "mindcv": Library("mindspore", _MS_TRAINING),
    "mindspore_zoo": Library("mindspore", _MS_TRAINING),
}


def importable(library: str = "torchvision") -> tuple[str, ...]:
    """Zoo models whose registry entry names a map for ``library``."""
    from .zoo import entry, list_models

    return tuple(n for n in list_models() if library in entry(n).importers)


def libraries_for(arch: str, framework: str | None = None) -> list[str]:
    """Libraries with a name map for zoo model ``arch`` (whose files ``framework`` writes)."""
    from .zoo import entry, list_models

    if arch not in list_models():
        return []
    return [lib for lib in entry(arch).importers if framework is None or LIBRARIES[lib].framework == framework]


def import_overrides(arch: str, library: str) -> dict:
    """The model options ``library``'s layout of ``arch`` needs (``{}`` for most)."""
    from .zoo import entry

    return dict(entry(arch).importers[library].overrides)


def import_scales(arch: str, library: str) -> dict[str, float]:
    """canonical tensor -> factor applied on import of ``library``'s ``arch`` (``Import.scales``)."""
    from .zoo import entry, list_models

    imp = entry(arch).importers.get(library) if arch in list_models() else None
    return dict(imp.scales) if imp else {}


class Tree:
    """The spec's structure as a family's :data:`Rule` reads it: child positions and pre-order
    leaf positions by node path, each node's op and output shape."""

    def __init__(self, spec: ModelSpec):
        rows = trace(spec)
        self.children: dict[str, list[str]] = {}
        self.leaves: dict[str, list[str]] = {}
        paths = [r.path for r in rows]
        for r in rows:
            parent = r.path.rsplit(".", 1)[0] if "." in r.path else ""
            self.children.setdefault(parent, []).append(r.path)
            if r.is_leaf:
                for i in range(len(r.path.split(".")) - 1):
                    self.leaves.setdefault(".".join(r.path.split(".")[:i + 1]), []).append(r.path)
        self.paths = set(paths)
        self.op = {r.path: r.op for r in rows}
        self.out = {r.path: tuple(r.out_shape) for r in rows}

    def has(self, path: str) -> bool:
        return path in self.paths

    def out_channels(self, path: str) -> int:
        return self.out[path][0]

    def is_stage(self, path: str) -> bool:
        return re.search(r"\.stage\d+$", path) is not None

    def units(self, container: str, atomic: tuple[str, ...] = ("scale",)) -> list[str]:
        """The leaves under ``container`` in pre-order, an ``atomic`` op's subtree counting as one
        (a library's list of modules, where an SE module is one entry)."""
        out = []

        def walk(p):
            kids = self.children.get(p)
            if not kids or self.op[p] in atomic:
                out.append(p)
                return
            for k in kids:
                walk(k)
        for k in self.children[container]:
            walk(k)
        return out

    def unit_pos(self, container: str, node: str) -> int:
        units = self.units(container)
        return next(i for i, u in enumerate(units) if node == u or node.startswith(u + "."))

    def pos(self, path: str) -> int:
        """Position of ``path`` among its parent's children."""
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        return self.children[parent].index(path)

    def leaf_pos(self, container: str, leaf: str) -> int:
        return self.leaves[container].index(leaf)

    def across(self, top: str, node: str) -> int:
        """Position of block ``node`` among the children of all top-level containers matching
        the pattern ``top`` (``stage2``, ``stage3``, ...): a library that numbers its blocks across stages."""
        blocks = [b for c in self.children[""] if re.fullmatch(top, c) for b in self.children[c]]
        return blocks.index(node)


Rule = Callable[[Tree, str], str]
"""A family's map for one library: (the spec's tree, canonical tensor name) -> the library's
name for it, whose last part is the canonical last name (the framework's is applied here)."""


def per_node(fn: Callable[[Tree, str], str]) -> Rule:
    """A rule written over node paths (canonical node -> library module path)."""
    def rule(t: Tree, name: str) -> str:
        node, leaf = name.rsplit(".", 1)
        return f"{fn(t, node)}.{leaf}"
    return rule


def flat(container: str) -> Rule:
    """``<container>.<...>.<tensor>`` -> ``<container>.<pre-order leaf index>.<tensor>``."""
    def rule(t: Tree, name: str) -> str:
        node, leaf = name.rsplit(".", 1)
        return f"{container}.{t.leaf_pos(container, node)}.{leaf}"
    return rule


def library_names(spec: ModelSpec, library: str, partial: bool = False) -> dict[str, str]:
    """canonical name -> ``library``'s name for that tensor, in the library's framework's
    convention, for a zoo spec whose registry entry names a map for the library. ``partial``:
    leave out the tensors the rule cannot place (a replaced classifier head's new tensors)
    instead of failing."""
    return {c: n for c, (n, _) in library_layout(spec, library, partial).items()}


def _check_library(library: str) -> Library:
    if library not in LIBRARIES:
        raise OnespecError(f"unknown library {library!r}; onespec imports from {', '.join(LIBRARIES)}")
    return LIBRARIES[library]


def rule_names(spec: ModelSpec, library: str, partial: bool = False) -> dict[str, tuple[str, str]]:
    """canonical name -> (the library's module path, the canonical last name), from the registry
    entry's rule alone (framework-free: the last name's framework convention is applied by
    ``library_names``)."""
    from .zoo import entry, list_models

    _check_library(library)
    imp = entry(spec.name).importers.get(library) if spec.name in list_models() else None
    if imp is None:
        raise OnespecError(f"{spec.name} has no {library} counterpart; {library} import covers "
                           f"{', '.join(importable(library)) or 'no model yet'}")
    t = Tree(spec)
    out = {}
    for name in layout(spec):
        try:
            out[name] = tuple(imp.rule(t, name).rsplit(".", 1))
        except (KeyError, ValueError, IndexError, AttributeError, StopIteration, OnespecError):
            if not partial:
                raise
    return out


def library_layout(spec: ModelSpec, library: str, partial: bool = False) -> dict[str, tuple[str, bool]]:
    """canonical name -> (library name, stored transposed)."""
    roles, transposed = _conventions(_check_library(library).framework)
    lay = layout(spec)
    return {c: (f"{node}.{roles.get(lay[c].role, leaf)}", lay[c].op in transposed and lay[c].role == "weight")
            for c, (node, leaf) in rule_names(spec, library, partial).items()}


def _conventions(framework: str) -> tuple[dict, frozenset]:
    """(tensor role -> last name, ops whose weight is stored transposed) of ``framework``: its
    backend's ``FRAMEWORK`` (imports no framework)."""
    from .backends import framework as descriptor

    fw = descriptor(framework)
    return dict(fw.roles), frozenset(fw.transposed)


def torchvision_names(spec: ModelSpec, partial: bool = False) -> dict[str, str]:
    """canonical name -> torchvision ``state_dict`` name (see ``library_names``)."""
    return library_names(spec, "torchvision", partial)


def _squeeze_trailing(shape) -> tuple:
    shape = tuple(shape)
    while shape and shape[-1] == 1 and len(shape) > 1:
        shape = shape[:-1]
    return shape


def fit(a: np.ndarray, shape: tuple, transposed: bool = False) -> np.ndarray | None:
    """``a`` as a tensor of ``shape``: transposed when the framework stores it so, reshaped only
    when the two differ by trailing unit dims; ``None`` when it cannot be that tensor. A conv
    standing for a Linear keeps the conv's [out, in, 1, 1] in every framework (PaddleClas
    MobileNetV3's ``last_conv``), so only a tensor of the Linear's own rank is transposed."""
    a = np.asarray(a)
    a = a.T if transposed and a.ndim == len(shape) else a
    if tuple(a.shape) == tuple(shape):
        return a
    if _squeeze_trailing(a.shape) == _squeeze_trailing(shape) and a.size == int(np.prod(shape)):
        return a.reshape(shape)
    return None


def bookkeeping(library: str, key: str) -> bool:
    """A key that holds training state, not a model tensor (``num_batches_tracked``, optimizer moments)."""
    return re.fullmatch(_check_library(library).bookkeeping, key) is not None


def match(spec: ModelSpec, library: str, raw: Mapping[str, np.ndarray]) -> tuple[dict, list[str], list[str], list[str]]:
    """(state, missing, unexpected, mismatched) of ``raw`` (a file's tensors) read as ``library``'s
    layout of ``spec``: what fits, and the library names that are absent, left over or of the
    wrong shape."""
    lay = library_layout(spec, library)
    scales = import_scales(spec.name, library)
    shapes = {c: t.shape for c, t in layout(spec).items()}
    state, missing, mismatched = {}, [], []
    for c, (n, tr) in lay.items():
        if n not in raw:
            missing.append(f"{n} (for {c})")
            continue
        a = fit(raw[n], shapes[c], tr)
        if a is None:
            mismatched.append(f"{n} {'x'.join(map(str, np.shape(raw[n])))} for {c} {'x'.join(map(str, shapes[c]))}")
            continue
        state[c] = np.ascontiguousarray(a * scales[c] if c in scales else a, np.float32)
    used = {n for n, _ in lay.values()}
    unexpected = sorted(k for k in raw if k not in used and not bookkeeping(library, k))
    return state, missing, unexpected, mismatched


def from_library(spec: ModelSpec, library: str, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical state from ``library``'s checkpoint tensors; every tensor is accounted for:
    missing, unexpected (bookkeeping aside) and wrongly shaped ones are listed."""
    state, missing, unexpected, mismatched = match(spec, library, raw)
    if missing or unexpected or mismatched:
        raise StateError(f"this checkpoint is not {library}'s {spec.name}", missing, unexpected, mismatched)
    check_state(spec, state, what=f"{library} {spec.name} checkpoint")
    return state


def from_torchvision(spec: ModelSpec, state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical state from a torchvision ``state_dict`` (numpy arrays)."""
    return from_library(spec, "torchvision", state_dict)
