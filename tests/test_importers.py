"""Checkpoints of timm, MindCV, PaddleClas and MindSpore-model-zoo models, imported by the
registry's name maps, give those libraries' own outputs in onespec's torch, paddle and mindspore
builds (1e-4 relative).

Each library's models are built here by the library itself (the MindSpore model zoo, not a
package, by its documented structure) with random weights and random BN statistics, saved in its
native format (``tests/libzoo.py``, one framework per process) and read back with the layout
detected from the keys. ``make test``: one model per name-map rule and
block kind; ``make slow``: every model each library has a map for.
"""
import json
import os
import subprocess
import sys

import pytest

import onespec
from onespec.backends import FRAMEWORKS as BACKENDS
from onespec.importers import LIBRARIES, importable, rule_names
from onespec.zoo import entry

from conftest import require

HERE = os.path.dirname(__file__)
FRAMEWORK = {"timm": "torch", "mindcv": "mindspore", "paddleclas": "paddle", "mindspore_zoo": "mindspore"}
PACKAGE = {"timm": "timm", "mindcv": "mindcv", "paddleclas": "paddleclas", "mindspore_zoo": "mindspore"}
LIBS = tuple(FRAMEWORK)
FAST = {"timm": ("resnet18", "se_resnet18", "mobilenet_v3_small"),
        "mindcv": ("mobilenet_v1", "mobilenet_v2", "squeezenet1_1", "resnet18", "se_resnet18", "mobilenet_v3_small",
                   "shufflenet_v1", "shufflenet_v2_x0_5"),
        "paddleclas": ("resnet18", "resnet50", "mobilenet_v1", "shufflenet_v2_x0_5", "squeezenet1_1", "micronet_m3",
                       "mobilenet_v2", "mobilenet_v3_small"),
        "mindspore_zoo": ("mobilenet_v2",)}
# every model at 64 px, the smallest size whose pools all take the same cases as at 224, except
# VGG, whose library models flatten a 7x7 map into their first Linear
SIZE = {a: 224 if a.startswith("vgg") else 64 for lib in LIBS for a in importable(lib)}


def _library_model(library: str, arch: str) -> str:
    return entry(arch).importers[library].model or arch


def _make(library: str, d, archs) -> None:
    require(FRAMEWORK[library], PACKAGE[library])
    # PaddleClas names some parameters explicitly (ParamAttr(name=...)) and paddle refuses a name
    # twice in one process: one process per model there
    groups = [[a] for a in archs] if library == "paddleclas" else \
        [[a for a in archs if SIZE[a] == s] for s in sorted({SIZE[a] for a in archs})]
    for group in groups:
        proc = subprocess.run([sys.executable, os.path.join(HERE, "libzoo.py"), library, str(d), str(SIZE[group[0]]),
                               *(f"{_library_model(library, a)}={a}" for a in group)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-4000:]


COMPARE = r"""
import json, sys, numpy as np, onespec
from onespec.backends import load_backend
from onespec.weights import load_state
b = load_backend(sys.argv[1])
errs = {}
for d, arch, size in json.loads(sys.argv[2]):
    info = json.load(open(f"{d}/{arch}.json"))
    spec = onespec.get_spec(arch, input_size=size, **info["overrides"])
    net = b.build(spec)
    b.load_state(net, spec, load_state(f"{d}/{arch}.npz"))
    ref = np.load(f"{d}/{arch}.y.npy")
    y = b.forward(net, np.load(f"{d}/{arch}.x.npy"))[0]
    errs[f"{d.rsplit('/', 1)[1]}/{arch}"] = float(np.abs(y - ref).max() / np.abs(ref).max())
print("ERRS" + json.dumps(errs))
"""


def _compare(backend: str, cases) -> dict[str, float]:
    require(backend)
    proc = subprocess.run([sys.executable, "-c", COMPARE, backend, json.dumps(cases)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.split("ERRS", 1)[1])


def _made(tmp_path_factory, which) -> list:
    cases = []
    for library in LIBS:
        d = tmp_path_factory.mktemp(library)
        _make(library, d, which[library])
        for arch in which[library]:
            info = json.load(open(d / f"{arch}.json"))
            # timm's ResNets are torchvision's layout key for key: either name is the right answer
            same = {lib for lib in entry(arch).importers
                    if rule_names(onespec.get_spec(arch, **entry(arch).importers[lib].overrides), lib)
                    == rule_names(onespec.get_spec(arch, **entry(arch).importers[library].overrides), library)
                    and LIBRARIES[lib].framework == FRAMEWORK[library]}
            assert info["layout"] in same, (arch, info)
            assert info["overrides"] == entry(arch).importers[library].overrides
            cases.append((str(d), arch, SIZE[arch]))
    return cases


@pytest.fixture(scope="module")
def library_checkpoints(tmp_path_factory):
    return _made(tmp_path_factory, FAST)


@pytest.mark.frameworks
@pytest.mark.parametrize("backend", BACKENDS)
def test_library_checkpoints_give_the_library_outputs(library_checkpoints, backend):
    errs = _compare(backend, library_checkpoints)
    assert len(errs) == sum(map(len, FAST.values()))
    assert all(e <= 1e-4 for e in errs.values()), errs


@pytest.mark.slow
def test_every_library_model_gives_the_library_outputs(tmp_path_factory):
    """The table of the note: library x model x framework, max relative error."""
    cases = _made(tmp_path_factory, {lib: importable(lib) for lib in LIBS})
    table = {b: _compare(b, cases) for b in BACKENDS}
    print(json.dumps(table, indent=1))
    assert all(e <= 1e-4 for errs in table.values() for e in errs.values()), table


def test_fast_set_holds_every_rule_of_each_library():
    """VGG's maps aside (its 133M parameters at 224 px are make slow's): every rule in make test."""
    for library in LIBS:
        rules = {entry(a).importers[library].rule for a in importable(library) if not a.startswith("vgg")}
        assert {entry(a).importers[library].rule for a in FAST[library]} == rules


@pytest.mark.frameworks
def test_a_library_width_variant_imports_with_its_width(tmp_path):
    """PaddleClas's MobileNetV1_x0_25 (its scales: int(c * 0.25) channels, as the zoo's width
    multiplier) read through the MobileNetV1 map with the width the user sets."""
    require("paddle", "paddleclas")
    proc = subprocess.run([sys.executable, os.path.join(HERE, "libzoo.py"), "paddleclas", str(tmp_path), "64",
                           "MobileNetV1_x0_25=mobilenet_v1@width=0.25"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.load(open(tmp_path / "mobilenet_v1.json"))
    assert info == {"layout": "paddleclas", "overrides": {"width": 0.25}}
    errs = _compare("torch", [(str(tmp_path), "mobilenet_v1", 64)])
    assert max(errs.values()) <= 1e-4, errs


@pytest.mark.frameworks
def test_convert_detects_the_library_and_writes_a_native_file(library_checkpoints, tmp_path):
    """``onespec convert`` without --from: the layout from the keys, the options the library's
    layout needs applied to the written file, which fits the model built with them."""
    d = next(c[0] for c in library_checkpoints if "paddleclas" in c[0] and c[1] == "squeezenet1_1")
    out = tmp_path / "sq.ckpt"
    proc = subprocess.run([sys.executable, "-m", "onespec", "convert", f"{d}/squeezenet1_1.pdparams", "--arch",
                           "squeezenet1_1", "--to", "mindspore", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "(paddleclas)" in proc.stdout and "--set ceil_mode=false --set conv1_padding=1" in proc.stdout
    check = subprocess.run([sys.executable, "-c", f"""
import numpy as np, onespec
from onespec.backends import load_backend
b = load_backend("mindspore")
spec = onespec.get_spec("squeezenet1_1", input_size=64, ceil_mode=False, conv1_padding=1)
net = b.build(spec); b.load(net, r"{out}")
y = b.forward(net, np.load(r"{d}/squeezenet1_1.x.npy"))[0]; ref = np.load(r"{d}/squeezenet1_1.y.npy")
print("ERR", float(np.abs(y - ref).max() / np.abs(ref).max()))
"""], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-3000:]
    assert float(check.stdout.split("ERR")[1]) <= 1e-4


@pytest.mark.frameworks
def test_a_checkpoint_of_another_library_or_architecture_is_refused(library_checkpoints, tmp_path):
    """Nothing is written; the error names the closest layout and the first keys that differ."""
    d = next(c[0] for c in library_checkpoints if "timm" in c[0])
    out = tmp_path / "out.npz"
    # timm's SE-ResNet-18 read as a plain ResNet-18: closest is torchvision's layout, SE keys left over
    proc = subprocess.run([sys.executable, "-m", "onespec", "convert", f"{d}/se_resnet18.pth", "--arch", "resnet18",
                           "--to", "canonical", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2 and not out.exists()
    err = proc.stderr.strip().splitlines()[-1]
    assert "not a resnet18 checkpoint onespec knows" in err and "closest: torchvision's layout" in err
    assert "unexpected (32): layer1.0.se.fc1.bias" in err
    # the right model, the wrong library named
    proc = subprocess.run([sys.executable, "-m", "onespec", "convert", f"{d}/mobilenet_v3_small.pth", "--arch",
                           "mobilenet_v3_small", "--from", "torchvision", "--to", "canonical", "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and not out.exists()
    assert "(torchvision tried); closest: torchvision's layout; missing" in proc.stderr
    # a library without a map for the model
    proc = subprocess.run([sys.executable, "-m", "onespec", "convert", f"{d}/resnet18.pth", "--arch", "hybridsn",
                           "--from", "timm", "--to", "canonical", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2 and "hybridsn has no timm counterpart" in proc.stderr and not out.exists()


@pytest.mark.frameworks
@pytest.mark.parametrize("recipe, library", [("mobilenetv2_garbage", "mindspore_zoo"), ("micronet_imagenet", "paddleclas")])
def test_recipes_start_from_the_library_checkpoint(library_checkpoints, recipe, library):
    """The MindSpore fine-tuning recipe starts from the MindSpore model zoo's MobileNetV2
    checkpoint, the MicroNet recipe from PaddleClas's: the file as the library saves it (the
    layout read from its keys, in the file's framework), every tensor loaded but the new head's."""
    from onespec.convert import read_for
    from onespec.training import load_recipe
    from onespec.models import for_recipe
    r = load_recipe(os.path.join(HERE, "..", "recipes", recipe + ".yaml"))
    d = next(c[0] for c in library_checkpoints if c[0].rsplit("/", 1)[1].startswith(library) and c[1] == r.model)
    spec = for_recipe(None, r, 26)
    state, skipped, missing, unexpected = read_for(spec, f"{d}/{r.model}{'.ckpt' if library != 'paddleclas' else '.pdparams'}")
    head = {"mobilenetv2_garbage": ("classifier.fc.weight", "classifier.fc.bias"),
            "micronet_imagenet": ("classifier.fc2.linear.weight", "classifier.fc2.linear.bias",
                                  "classifier.fc2.bn.weight", "classifier.fc2.bn.bias",
                                  "classifier.fc2.bn.running_mean", "classifier.fc2.bn.running_var")}[recipe]
    assert sorted(s.split(" ")[0] for s in skipped) == sorted(head) and not missing and not unexpected
    assert set(state) == set(onespec.weights.layout(spec)) - set(head)
