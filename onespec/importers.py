"""Importers from zoos users already have: torchvision ``state_dict`` -> canonical state.

The mapping is explicit and per family: each canonical tensor name (``features.fire2.squeeze.weight``)
is rewritten to the torchvision name (``features.3.squeeze.weight``) from the spec's own
structure, then names and shapes are checked both ways. Framework-free: it maps numpy arrays.
"""
from __future__ import annotations

import re
from typing import Callable, Mapping

import numpy as np

from .errors import OnespecError
from .spec import ModelSpec, trace
from .weights import StateError, check_state, layout

def importable(importer: str = "torchvision") -> tuple[str, ...]:
    """Zoo models whose registry entry names a map for ``importer``."""
    from .zoo import entry, list_models

    return tuple(n for n in list_models() if importer in entry(n).importers)


class _Tree:
    """Child positions and pre-order leaf positions of the spec, by node path."""

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

    def pos(self, path: str) -> int:
        """Position of ``path`` among its parent's children."""
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        return self.children[parent].index(path)

    def leaf_pos(self, container: str, leaf: str) -> int:
        return self.leaves[container].index(leaf)


def _squeezenet(t: _Tree, name: str) -> str:
    node, leaf = name.rsplit(".", 1)
    m = re.fullmatch(r"features\.(\w+?)(?:\.(squeeze|expand\.(expand1x1|expand3x3)\.conv))?", node)
    if m:
        idx = t.pos(f"features.{m.group(1)}")
        sub = "" if m.group(2) is None else "." + (m.group(3) or "squeeze")
        return f"features.{idx}{sub}.{leaf}"
    if node == "classifier.final_conv":
        return f"classifier.{t.pos(node)}.{leaf}"
    raise KeyError(name)


def _flat(container: str) -> Callable[[_Tree, str], str]:
    """``<container>.<...>.<tensor>`` -> ``<container>.<pre-order leaf index>.<tensor>``."""
    def rule(t: _Tree, name: str) -> str:
        node, leaf = name.rsplit(".", 1)
        return f"{container}.{t.leaf_pos(container, node)}.{leaf}"
    return rule


def _vgg(t: _Tree, name: str) -> str:
    top = name.split(".", 1)[0]
    return _flat(top)(t, name)


def _mobilenet_v2(t: _Tree, name: str) -> str:
    node, leaf = name.rsplit(".", 1)
    if node.startswith("classifier."):
        return f"classifier.{t.pos(node)}.{leaf}"
    blocks = [p for s in t.children["features"] for p in (t.children[s] if ".stage" in s else [s])]
    m = re.fullmatch(r"(features\.(?:stem|last_conv|stage\d+\.block\d+))(?:\.body)?\.?(\w*)\.?(conv|bn)?", node)
    block, part, kind = m.group(1), m.group(2), m.group(3)
    idx = blocks.index(block)
    if block.endswith(("stem", "last_conv")):
        return f"features.{idx}.{0 if part == 'conv' else 1}.{leaf}"
    body = block + (".body" if block + ".body" in t.paths else "")
    parts = [p.rsplit(".", 1)[1] for p in t.children[body]]
    i = parts.index(part)
    if part != "project":  # Conv2dNormActivation: .0 conv, .1 bn
        return f"features.{idx}.conv.{i}.{0 if kind == 'conv' else 1}.{leaf}"
    return f"features.{idx}.conv.{i + (0 if kind == 'conv' else 1)}.{leaf}"


def _mobilenet_v3(t: _Tree, name: str) -> str:
    node, leaf = name.rsplit(".", 1)
    if node.startswith("classifier."):
        return f"classifier.{t.pos(node)}.{leaf}"
    m = re.fullmatch(r"features\.(\w+)(?:\.body)?(?:\.(\w+))?(?:\.gate)?\.(conv|bn|fc1|fc2)", node)
    block, part, kind = f"features.{m.group(1)}", m.group(2), m.group(3)
    idx = t.pos(block)
    if part is None:  # stem / last_conv
        return f"features.{idx}.{0 if kind == 'conv' else 1}.{leaf}"
    body = block + (".body" if block + ".body" in t.paths else "")
    i = [p.rsplit(".", 1)[1] for p in t.children[body]].index(part)
    if part == "se":
        return f"features.{idx}.block.{i}.{kind}.{leaf}"
    return f"features.{idx}.block.{i}.{0 if kind == 'conv' else 1}.{leaf}"


def _shufflenet_v2(t: _Tree, name: str) -> str:
    node, leaf = name.rsplit(".", 1)
    m = re.fullmatch(r"(stage\d)\.unit(\d+)\.branches\.(branch[12])\.(.+)", node)
    if m:
        branch = f"{m.group(1)}.unit{m.group(2)}.branches.{m.group(3)}"
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}.{t.leaf_pos(branch, node)}.{leaf}"
    if node.startswith(("conv1.", "conv5.")):
        top = node.split(".")[0]
        return f"{top}.{t.leaf_pos(top, node)}.{leaf}"
    if node == "fc":
        return name
    raise KeyError(name)


def _resnet(t: _Tree, name: str) -> str:
    node, leaf = name.rsplit(".", 1)
    if node in ("stem.conv", "stem.bn"):
        return f"{'conv1' if node == 'stem.conv' else 'bn1'}.{leaf}"
    if node == "fc":
        return name
    m = re.fullmatch(r"(layer\d)\.block(\d+)\.residual\.(?:body\.conv(\d)\.(conv|bn)|shortcut\.(conv|bn))", node)
    if m.group(3):
        return f"{m.group(1)}.{m.group(2)}.{m.group(4)}{m.group(3)}.{leaf}"
    return f"{m.group(1)}.{m.group(2)}.downsample.{0 if m.group(5) == 'conv' else 1}.{leaf}"


_RULES = {"squeezenet": _squeezenet, "vgg": _vgg, "mobilenet_v2": _mobilenet_v2, "mobilenet_v3": _mobilenet_v3,
          "shufflenet_v2": _shufflenet_v2, "resnet": _resnet}


def torchvision_names(spec: ModelSpec, partial: bool = False) -> dict[str, str]:
    """canonical name -> torchvision ``state_dict`` name, for a zoo spec whose registry entry names
    a torchvision map. ``partial``: leave out the tensors the rule cannot place (a replaced
    classifier head's new tensors) instead of failing."""
    from .zoo import list_models, entry

    rule_name = entry(spec.name).importers.get("torchvision") if spec.name in list_models() else None
    if rule_name is None:
        raise OnespecError(f"{spec.name} has no torchvision counterpart; torchvision import covers "
                           f"{', '.join(importable('torchvision'))}")
    t = _Tree(spec)
    rule = _RULES[rule_name]
    out = {}
    for name in layout(spec):
        try:
            out[name] = rule(t, name)
        except (KeyError, ValueError, IndexError, OnespecError):
            if not partial:
                raise
    return out


def from_torchvision(spec: ModelSpec, state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical state from a torchvision ``state_dict`` (numpy arrays); every tensor is accounted
    for: missing, unexpected (``num_batches_tracked`` aside) and wrongly shaped ones are listed."""
    names = torchvision_names(spec)
    got = {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    missing = [f"{tv} (for {c})" for c, tv in names.items() if tv not in got]
    unexpected = sorted(set(got) - set(names.values()))
    if missing or unexpected:
        raise StateError(f"this state_dict is not torchvision's {spec.name}", missing, unexpected)
    state = {c: np.asarray(got[tv]) for c, tv in names.items()}
    check_state(spec, state, what=f"torchvision {spec.name} state_dict")
    return state


def looks_like_torchvision(spec: ModelSpec, keys) -> bool:
    try:
        wanted = set(torchvision_names(spec).values())
    except OnespecError:
        return False
    return wanted == {k for k in keys if not k.endswith("num_batches_tracked")}
