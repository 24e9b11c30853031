"""The generated source of every zoo model, read as text (no framework imported): lines within
100 characters, one class per distinct block kind, only the framework, numpy and the standard
library imported, and no longer than twice torchvision's own file for torchvision's families."""
import ast
import importlib.util
import os
import re
import sys

import pytest

import onespec
from onespec.codegen import codegen
from onespec.errors import OnespecError

FRAMEWORK_MODULES = {"torch": {"torch"}, "paddle": {"paddle"}, "mindspore": {"mindspore"}}
ALLOWED = set(sys.stdlib_module_names) | {"numpy"}


def torchvision_file(spec):
    """torchvision's file for a spec whose meta names ``torchvision.models.<module>``, or None."""
    m = re.match(r"torchvision\.models\.(\w+)", spec.meta.source)
    found = importlib.util.find_spec("torchvision")  # locates the package without running it
    if not m or found is None:
        return None
    path = os.path.join(os.path.dirname(found.origin), "models", f"{m.group(1)}.py")
    return path if os.path.exists(path) else None


def class_bodies(tree):
    return {n.name: ast.dump(ast.Module(body=n.body, type_ignores=[])) for n in tree.body
            if isinstance(n, ast.ClassDef)}


@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_generated_source_reads_like_handwritten_code(backend):
    ratios = {}
    for name in onespec.list_models():
        spec = onespec.get_spec(name)
        src = codegen(spec, backend)
        long = [line for line in src.splitlines() if len(line) > 100]
        assert not long, (name, backend, long[:3])
        tree = ast.parse(src)
        bodies = class_bodies(tree)
        assert len(set(bodies.values())) == len(bodies), (name, backend, "two classes with one body")
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert imported <= ALLOWED | FRAMEWORK_MODULES[backend], (name, backend, imported)
        assert "def build(" in src and " ".join(spec.meta.paper.split()) in " ".join(src.split())
        ref = torchvision_file(spec)
        if ref is not None:
            ratios[name] = len(src.splitlines()) / len(open(ref).read().splitlines())
    over = {k: round(v, 2) for k, v in ratios.items() if v > 2.0}
    assert not over, over
    if backend == "torch":
        assert ratios, "no torchvision reference found"


def test_block_kinds_become_classes_with_their_knobs():
    src = codegen(onespec.get_spec("squeezenet1_1"), "torch")
    tree = ast.parse(src)
    fire = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Fire")
    init = next(n for n in fire.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert [a.arg for a in init.args.args] == ["self", "in_channels", "squeeze_channels", "expand_channels"]
    assert "FEATURES_FIRE = [\n    ('fire2', 64, 16, 64),\n    ('fire3', 128, 16, 64),\n]" in src
    assert "self.squeeze = nn.Conv2d(in_channels, squeeze_channels, 1)" in src
    assert "nn.Conv2d(512, num_classes, 1)" in src


def test_unknown_backend_and_non_spec_are_refused():
    with pytest.raises(OnespecError):
        codegen(onespec.get_spec("resnet18"), "numpy")
    with pytest.raises(OnespecError):
        codegen("resnet18", "torch")


@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_every_helper_a_file_may_hold_is_within_100_characters(backend):
    from onespec.codegen import backend_ops
    ops = backend_ops(backend)
    for name, src in ops.HELPERS.items():
        ast.parse(src)
        assert max(len(line) for line in src.splitlines()) <= 100, (backend, name)
