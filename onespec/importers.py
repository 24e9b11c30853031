"""Importers from the zoos users already have: torchvision, timm, PaddleClas, MindCV and the
MindSpore model zoo.

A library saves its checkpoints in one framework's format (``LIBRARIES``). The mapping is
explicit and per family: the registry entry of a model names, per library, the rule here that
rewrites each canonical tensor name (``features.fire2.squeeze.weight``) to the library's module
path (``features.3.squeeze.weight``) from the spec's own structure, and the model options the
library's layout needs (timm's SE-ResNets round SE widths: ``se_divisor=8``). The tensor's last
name follows its framework's convention by role (Paddle ``_mean``/``_variance``, MindSpore
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


def _per_node(fn: Callable[[_Tree, str], str]) -> Callable[[_Tree, str], str]:
    """A rule written over node paths (canonical node -> library module path)."""
    def rule(t: _Tree, name: str) -> str:
        node, leaf = name.rsplit(".", 1)
        return f"{fn(t, node)}.{leaf}"
    return rule


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
    m = re.fullmatch(r"(layer\d)\.block(\d+)\.residual\.(?:body\.conv(\d)\.(conv|bn)|shortcut\.(conv|bn)|"
                     r"body\.se\.gate\.(fc[12]))", node)
    if m.group(6):  # SE-ResNet (timm): layerN.i.se.fc1 / fc2
        return f"{m.group(1)}.{m.group(2)}.se.{m.group(6)}.{leaf}"
    if m.group(3):
        return f"{m.group(1)}.{m.group(2)}.{m.group(4)}{m.group(3)}.{leaf}"
    return f"{m.group(1)}.{m.group(2)}.downsample.{0 if m.group(5) == 'conv' else 1}.{leaf}"


# --- timm --------------------------------------------------------------------------------
@_per_node
def _timm_mobilenet_v3(t: _Tree, node: str) -> str:
    """timm's ``mobilenetv3_*_100``: ``conv_stem``/``bn1``, ``blocks.<stage>.<i>`` (a stage is a run
    of blocks with one output width: its arch-def rows), ``conv_head`` (a biased 1x1 conv where
    torchvision has ``classifier.0``), ``classifier``."""
    if node in ("features.stem.conv", "features.stem.bn"):
        return "conv_stem" if node.endswith("conv") else "bn1"
    if node == "classifier.fc1":
        return "conv_head"
    if node == "classifier.fc2":
        return "classifier"
    blocks = t.children["features"][1:]
    stages: list[list[str]] = []
    for b in blocks:
        if not stages or t.out_channels(b) != t.out_channels(stages[-1][-1]):
            stages.append([])
        stages[-1].append(b)
    block = next(b for b in blocks if node == b or node.startswith(b + "."))
    s = next(i for i, st in enumerate(stages) if block in st)
    prefix = f"blocks.{s}.{stages[s].index(block)}"
    if block.endswith("last_conv"):
        return f"{prefix}.{'conv' if node.endswith('conv') else 'bn1'}"
    m = re.fullmatch(r"(?:\.body)?\.(expand|dw|project|se\.gate)\.(conv|bn|fc1|fc2)", node[len(block):])
    part, kind = m.group(1), m.group(2)
    if part == "se.gate":
        return f"{prefix}.se.{'conv_reduce' if kind == 'fc1' else 'conv_expand'}"
    expands = t.has(f"{block}.body.expand") or t.has(f"{block}.expand")
    names = ({"expand": ("conv_pw", "bn1"), "dw": ("conv_dw", "bn2"), "project": ("conv_pwl", "bn3")} if expands
             else {"dw": ("conv_dw", "bn1"), "project": ("conv_pw", "bn2")})  # DepthwiseSeparableConv
    return f"{prefix}.{names[part][0 if kind == 'conv' else 1]}"


# --- MindCV --------------------------------------------------------------------------------
def _mindcv_flat(stem_units: int, body: str, last: str, head: dict[str, str]):
    """MindCV's MobileNets: ``features`` is one SequentialCell (stem conv, bn, act; the blocks;
    the last conv, bn, act), each block a list (at ``<block><body>``) whose index counts
    activations too; an SE module is one entry (``conv_reduce`` / ``conv_expand``)."""
    @_per_node
    def rule(t: _Tree, node: str) -> str:
        if node in head:
            return head[node]
        se = re.fullmatch(r"(.+\.se)\.gate\.(fc[12])", node)
        if se:
            return f"{rule_node(t, se.group(1) + '.gate')}.{'conv_reduce' if se.group(2) == 'fc1' else 'conv_expand'}"
        return rule_node(t, node)

    def rule_node(t: _Tree, node: str) -> str:
        kids = t.children["features"]
        top = next(k for k in kids if node == k or node.startswith(k + "."))
        if top == "features.stem":
            return f"features.{t.unit_pos(top, node)}"
        blocks = [b for k in kids[1:] for b in (t.children[k] if t.is_stage(k) else [k])]
        if top == last:
            return f"features.{stem_units + len(blocks) - 1 + t.unit_pos(top, node)}"
        block = next(b for b in blocks if node.startswith(b + "."))
        return f"features.{stem_units + blocks.index(block)}{body}.{t.unit_pos(block, node)}"
    return rule


_mindcv_mobilenet_v1 = _mindcv_flat(3, "", "", {"fc": "classifier"})
_mindcv_mobilenet_v2 = _mindcv_flat(3, ".layers", "features.last_conv", {"classifier.fc": "classifier.1"})
_mindcv_mobilenet_v3 = _mindcv_flat(3, ".layers", "features.last_conv",
                                    {"classifier.fc1": "classifier.0", "classifier.fc2": "classifier.3"})


def _mindcv_resnet(t: _Tree, name: str) -> str:
    """MindCV ``resnet*`` and ``seresnet*``: torchvision's / timm's names but the shortcut
    (``down_sample`` in ResNet, ``downsample`` in SENet), SENet's stem (``layer0.0`` / ``layer0.1``)
    and SE module (``se_module.conv_reduce`` / ``conv_expand``, Dense layers), ``classifier``."""
    n = _resnet(t, name)
    n = re.sub(r"^fc\.", "classifier.", n)
    n = re.sub(r"\.se\.fc([12])\.", lambda m: f".se_module.conv_{'reduce' if m.group(1) == '1' else 'expand'}.", n)
    if any(p.endswith(".se") for p in t.paths):
        return re.sub(r"^(conv1|bn1)\.", lambda m: f"layer0.{0 if m.group(1) == 'conv1' else 1}.", n)
    return n.replace(".downsample.", ".down_sample.")


@_per_node
def _mindcv_shufflenet_v2(t: _Tree, node: str) -> str:
    """MindCV ``shufflenet_v2_*`` (Megvii's layout): ``first_conv.0`` / ``.1``, units numbered
    across stages as ``features.<i>`` with ``branch_main`` (pw, BN, ReLU, dw, BN, pw, BN, ReLU) and
    ``branch_proj`` (dw, BN, pw, BN, ReLU; stride-2 units), ``conv_last.0`` / ``.1``, ``classifier``."""
    if node == "fc":
        return "classifier"
    if node.startswith(("conv1.", "conv5.")):
        return f"{'first_conv' if node.startswith('conv1') else 'conv_last'}.{0 if node.endswith('conv') else 1}"
    m = re.fullmatch(r"(stage\d\.unit\d+)\.branches\.(branch[12])\..+", node)
    branch, i = f"{m.group(1)}.branches.{m.group(2)}", t.across(r"stage\d", m.group(1))
    return (f"features.{i}.{'branch_main' if m.group(2) == 'branch2' else 'branch_proj'}"
            f".{t.leaf_pos(branch, node)}")


@_per_node
def _mindcv_shufflenet_v1(t: _Tree, node: str) -> str:
    """MindCV ``shufflenet_v1_g*`` (Megvii's layout): ``first_conv.0`` / ``.1``, units numbered
    across stages as ``features.<i>``, ``branch_main_1`` (1x1 group conv, BN, ReLU) and
    ``branch_main_2`` (depthwise conv, BN, 1x1 group conv, BN), ``classifier``."""
    if node == "fc":
        return "classifier"
    if node.startswith("conv1."):
        return f"first_conv.{0 if node.endswith('conv') else 1}"
    m = re.fullmatch(r"(stage\d\.unit\d+)\.merge\.body\.(gconv1|dw|gconv2)\.(conv|bn)", node)
    part = {"gconv1": ("branch_main_1", 0), "dw": ("branch_main_2", 0), "gconv2": ("branch_main_2", 2)}[m.group(2)]
    i = t.across(r"stage\d", m.group(1))
    return f"features.{i}.{part[0]}.{part[1] + (0 if m.group(3) == 'conv' else 1)}"


# --- MindSpore model zoo ---------------------------------------------------------------------
def _mindspore_zoo_mobilenet_v2(t: _Tree, name: str) -> str:
    """The MindSpore model zoo's MobileNetV2 (official/cv/MobileNetV2, the garbage-classification
    fine-tuning tutorial's starting point) as its training script saves it: ``MobileNetV2Backbone``
    and ``MobileNetV2Head`` joined by a cell without prefix, so ``features.<i>`` (a ConvBNReLU's
    conv / BN at ``.features.0`` / ``.features.1``; an inverted residual's at ``.conv.<j>``) and
    ``head.1`` (the Dense after the global pool; ``has_dropout=False``, the scripts' default).
    Torchvision's indices otherwise: derived from its rule."""
    tv = _mobilenet_v2(t, name)
    if tv.startswith("classifier."):
        return "head.1." + tv.rsplit(".", 1)[1]
    m = re.fullmatch(r"features\.(\d+)\.(?:conv\.(\d+)\.)?([01])\.(\w+)", tv)
    if m:  # a ConvBNReLU (torchvision's Conv2dNormActivation)
        inner = f"conv.{m.group(2)}." if m.group(2) is not None else ""
        return f"features.{m.group(1)}.{inner}features.{m.group(3)}.{m.group(4)}"
    return tv  # the projection conv / BN: features.<i>.conv.<j>


# --- PaddleClas ----------------------------------------------------------------------------
@_per_node
def _paddleclas_resnet(t: _Tree, node: str) -> str:
    """PaddleClas ``ResNet*`` (legendary_models): ``stem.0``, ``blocks.<i>`` numbered across stages,
    ``conv0..2`` and ``short`` (each a ConvBNLayer: ``.conv`` / ``.bn``), ``fc``."""
    if node in ("stem.conv", "stem.bn"):
        return f"stem.0.{node[5:]}"
    if node == "fc":
        return "fc"
    m = re.fullmatch(r"(layer\d)\.(block\d+)\.residual\.(?:body\.conv(\d)|shortcut)\.(conv|bn)", node)
    part = "short" if m.group(3) is None else f"conv{int(m.group(3)) - 1}"
    i = t.across(r"layer\d", f"{m.group(1)}.{m.group(2)}")
    return f"blocks.{i}.{part}.{m.group(4)}"


@_per_node
def _paddleclas_mobilenet_v1(t: _Tree, node: str) -> str:
    """PaddleClas ``MobileNetV1``: ``conv`` (stem), ``blocks.<i>.depthwise_conv`` /
    ``pointwise_conv`` (ConvBNLayer: ``.conv`` / ``.bn``), ``fc``."""
    if node == "fc":
        return "fc"
    m = re.fullmatch(r"features\.(?:stem|block(\d+)\.(dw|pw))\.(conv|bn)", node)
    if m.group(1) is None:
        return f"conv.{m.group(3)}"
    part = "depthwise_conv" if m.group(2) == "dw" else "pointwise_conv"
    return f"blocks.{int(m.group(1)) - 1}.{part}.{m.group(3)}"


@_per_node
def _paddleclas_mobilenet_v2(t: _Tree, node: str) -> str:
    """PaddleClas ``MobileNetV2`` (model_zoo): ``conv1`` (stem), stages ``conv2``..``conv8`` with
    ``_first_block`` and ``conv<s>_<i>`` (from 2), each ``_expand_conv`` / ``_bottleneck_conv`` /
    ``_linear_conv`` (ConvBNLayer: ``_conv`` / ``_batch_norm``), ``conv9`` (last conv), ``out``."""
    if node == "classifier.fc":
        return "out"
    leaf = {"conv": "_conv", "bn": "_batch_norm"}
    m = re.fullmatch(r"features\.(stem|last_conv)\.(conv|bn)", node)
    if m:
        return f"{'conv1' if m.group(1) == 'stem' else 'conv9'}.{leaf[m.group(2)]}"
    m = re.fullmatch(r"features\.stage(\d)\.block(\d+)(?:\.body)?\.(expand|dw|project)\.(conv|bn)", node)
    s, i = int(m.group(1)) + 1, int(m.group(2))
    part = {"expand": "_expand_conv", "dw": "_bottleneck_conv", "project": "_linear_conv"}[m.group(3)]
    return f"conv{s}.{'_first_block' if i == 0 else f'conv{s}_{i + 1}'}.{part}.{leaf[m.group(4)]}"


@_per_node
def _paddleclas_mobilenet_v3(t: _Tree, node: str) -> str:
    """PaddleClas ``MobileNetV3_*`` (legendary_models): ``conv`` (stem), ``blocks.<i>`` with
    ``expand_conv`` / ``bottleneck_conv`` / ``linear_conv`` (ConvBNLayer: ``.conv`` / ``.bn``) and
    ``mid_se.conv1`` / ``conv2``, ``last_second_conv``, ``last_conv`` (a 1x1 conv for the first head
    Linear), ``fc``."""
    head = {"classifier.fc1": "last_conv", "classifier.fc2": "fc"}
    if node in head:
        return head[node]
    m = re.fullmatch(r"features\.(stem|last_conv)\.(conv|bn)", node)
    if m:
        return f"{'conv' if m.group(1) == 'stem' else 'last_second_conv'}.{m.group(2)}"
    m = re.fullmatch(r"features\.block(\d+)(?:\.body)?\.(expand|dw|project|se\.gate)\.(conv|bn|fc1|fc2)", node)
    part = {"expand": "expand_conv", "dw": "bottleneck_conv", "project": "linear_conv", "se.gate": "mid_se"}[m.group(2)]
    leaf = {"fc1": "conv1", "fc2": "conv2"}.get(m.group(3), m.group(3))
    return f"blocks.{int(m.group(1)) - 1}.{part}.{leaf}"


@_per_node
def _paddleclas_shufflenet_v2(t: _Tree, node: str) -> str:
    """PaddleClas ``ShuffleNetV2_*``: ``_conv1``, blocks ``<stage>_<i>`` (from 1) with
    ``_conv_dw_1``/``_conv_linear_1`` (branch 1) and ``_conv_pw[_2]``/``_conv_dw[_2]``/
    ``_conv_linear[_2]`` (branch 2; ``_2`` in a stride-2 unit), ``_last_conv``, ``_fc``; a
    ConvBNLayer's parts are ``_conv`` / ``_batch_norm``."""
    if node == "fc":
        return "_fc"
    leaf = {"conv": "_conv", "bn": "_batch_norm"}[node.rsplit(".", 1)[1]]
    if node.startswith(("conv1.", "conv5.")):
        return f"{'_conv1' if node.startswith('conv1') else '_last_conv'}.{leaf}"
    m = re.fullmatch(r"stage(\d)\.unit(\d+)\.branches\.(branch[12])\.(dw|pw|pw1|pw2)\.(conv|bn)", node)
    stage, unit, branch, part = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    down = t.op[f"stage{stage}.unit{unit}.branches.branch1"] != "identity"
    if branch == "branch1":
        name = {"dw": "_conv_dw_1", "pw": "_conv_linear_1"}[part]
    else:
        name = {"pw1": "_conv_pw", "dw": "_conv_dw", "pw2": "_conv_linear"}[part] + ("_2" if down else "")
    return f"{stage}_{unit + 1}.{name}.{leaf}"


@_per_node
def _paddleclas_squeezenet(t: _Tree, node: str) -> str:
    """PaddleClas ``SqueezeNet1_*``: ``_conv`` (conv1), fire modules ``_conv1`` .. ``_conv8``
    (squeeze ``._conv._conv``, expand 1x1 / 3x3 ``._conv_path1._conv`` / ``._conv_path2._conv``),
    ``_conv9`` (the final 1x1 conv)."""
    if node == "features.conv1":
        return "_conv"
    if node == "classifier.final_conv":
        return "_conv9"
    m = re.fullmatch(r"features\.fire(\d)\.(squeeze|expand\.expand1x1\.conv|expand\.expand3x3\.conv)", node)
    part = {"squeeze": "_conv", "expand.expand1x1.conv": "_conv_path1", "expand.expand3x3.conv": "_conv_path2"}
    return f"_conv{int(m.group(1)) - 1}.{part[m.group(2)]}._conv"


@_per_node
def _paddleclas_vgg(t: _Tree, node: str) -> str:
    """PaddleClas ``VGG*``: ``conv_block_<stage>.conv<i>`` (no biases), ``fc1``..``fc3``."""
    m = re.fullmatch(r"features\.stage(\d)\.conv(\d)\.conv|classifier\.(fc[123])", node)
    return m.group(3) or f"conv_block_{m.group(1)}.conv{m.group(2)}"


# PaddleClas DYMicroBlock's ``layers`` indices by block kind (micronet.py): depthwise first
# (spatial, act, shuffle, shuffle, pw, act, ...), pointwise only (pw, act), pointwise-depthwise-pointwise
_MICRO_LAYERS = {"spatial": {"spatial": 0, "act1": 1, "pw": 4, "act2": 5},
                 "pw": {"pw": 0, "act1": 1},
                 "pw1": {"pw1": 0, "act1": 1, "spatial": 3, "act2": 5, "pw2": 7, "act3": 8}}


@_per_node
def _paddleclas_micronet(t: _Tree, node: str) -> str:
    """PaddleClas ``MicroNet_M*``: ``features.0.stem.0.conv.<k>`` (stem), ``features.<i>.layers.<k>``
    (``_MICRO_LAYERS``; a conv unit's ``conv.<k>``, a dynamic shift-max's ``fc.0`` / ``fc.2``),
    ``classifier.0`` / ``classifier.2`` (SwishLinear: ``linear.0`` Linear, ``linear.1`` BN)."""
    m = re.fullmatch(r"classifier\.(fc[12])\.(linear|bn)", node)
    if m:
        return f"classifier.{0 if m.group(1) == 'fc1' else 2}.linear.{0 if m.group(2) == 'linear' else 1}"
    if node.startswith("features.stem."):
        return f"features.0.stem.0.conv.{t.leaf_pos('features.stem', node)}"
    m = re.fullmatch(r"features\.block(\d+)(\.body)?\.(\w+)\.(.+)", node)  # .body: a residual block
    block, part, rest = f"features.block{m.group(1)}{m.group(2) or ''}", m.group(3), m.group(4)
    kids = [k.rsplit(".", 1)[1] for k in t.children[block]]
    kind = "pw1" if "pw1" in kids else "spatial" if "spatial" in kids else "pw"
    prefix = f"features.{m.group(1)}.layers.{_MICRO_LAYERS[kind][part]}"
    if rest.startswith("gate."):
        return f"{prefix}.fc.{0 if rest == 'gate.fc1' else 2}"
    return f"{prefix}.conv.{t.leaf_pos(f'{block}.{part}', node)}"


_RULES = {"squeezenet": _squeezenet, "vgg": _vgg, "mobilenet_v2": _mobilenet_v2, "mobilenet_v3": _mobilenet_v3,
          "shufflenet_v2": _shufflenet_v2, "resnet": _resnet, "timm_mobilenet_v3": _timm_mobilenet_v3,
          "mindcv_mobilenet_v1": _mindcv_mobilenet_v1, "mindcv_mobilenet_v2": _mindcv_mobilenet_v2,
          "mindcv_mobilenet_v3": _mindcv_mobilenet_v3, "mindcv_resnet": _mindcv_resnet,
          "mindcv_shufflenet_v1": _mindcv_shufflenet_v1, "mindcv_shufflenet_v2": _mindcv_shufflenet_v2,
          "paddleclas_resnet": _paddleclas_resnet, "paddleclas_mobilenet_v1": _paddleclas_mobilenet_v1,
          "paddleclas_shufflenet_v2": _paddleclas_shufflenet_v2, "paddleclas_squeezenet": _paddleclas_squeezenet,
          "paddleclas_micronet": _paddleclas_micronet, "paddleclas_vgg": _paddleclas_vgg,
          "mindspore_zoo_mobilenet_v2": _mindspore_zoo_mobilenet_v2,
          "paddleclas_mobilenet_v2": _paddleclas_mobilenet_v2, "paddleclas_mobilenet_v3": _paddleclas_mobilenet_v3}


def library_names(spec: ModelSpec, library: str, partial: bool = False) -> dict[str, str]:
    """canonical name -> ``library``'s name for that tensor, in the library's framework's
    convention, for a zoo spec whose registry entry names a map for the library. ``partial``:
    leave out the tensors the rule cannot place (a replaced classifier head's new tensors)
    instead of failing."""
    return {c: n for c, (n, _) in _library_layout(spec, library, partial).items()}


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
    t = _Tree(spec)
    rule = _RULES[imp.rule]
    out = {}
    for name in layout(spec):
        try:
            out[name] = tuple(rule(t, name).rsplit(".", 1))
        except (KeyError, ValueError, IndexError, AttributeError, StopIteration, OnespecError):
            if not partial:
                raise
    return out


def _library_layout(spec: ModelSpec, library: str, partial: bool = False) -> dict[str, tuple[str, bool]]:
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
    lay = _library_layout(spec, library)
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
