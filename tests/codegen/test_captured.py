"""Generated files of captured specs: the graph form (U-Net's skips, DenseNet's concatenations,
several outputs) and the ops capture adds, in every framework, with onespec blocked from import,
the captured weights loaded by the framework's strict loader, equal to onespec's build to 1e-5
eager and compiled."""
import ast
import importlib.util
import json
import os
import sys

import numpy as np
import pytest

import onespec
from onespec.backends import FRAMEWORKS
from onespec.codegen import codegen
from onespec.codegen.verify import TOLERANCE, check_all
from onespec.errors import OnespecError
from onespec.spec.model import parse_spec

from conftest import require

_CAPTURED: dict = {}


def capture_models():
    """tests/capture/capture_models.py, the networks written for the capture tests."""
    if "capture_models" not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "capture", "capture_models.py")
        spec = importlib.util.spec_from_file_location("capture_models", path)
        mod = sys.modules["capture_models"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    return sys.modules["capture_models"]


def captured(name: str):
    """(spec, state) of a captured network, captured once per session."""
    if name not in _CAPTURED:
        require("torch")
        from onespec.capture import capture
        cm = capture_models()
        if name == "FaceHeads":
            module, shape = cm.build_face_heads(), (3, 16, 16)
        elif name == "UNet":
            module, shape = cm._randomized(cm.UNet()), (3, 16, 16)
        else:
            module, shape = torchvision_or_timm(name), (3, 224, 224)
        _CAPTURED[name] = capture(module, shape)
    return _CAPTURED[name]


def torchvision_or_timm(name: str):
    if name == "ghostnet_100":
        timm = pytest.importorskip("timm")
        model = timm.create_model(name)
    else:
        tv = pytest.importorskip("torchvision")
        model = getattr(tv.models, name)(**({"aux_logits": False, "init_weights": True} if name == "googlenet" else {}))
    return capture_models()._randomized(model)


# a stride-2 "same" conv on an even input: one row and column of padding after, none before
SAME = {"name": "same_padding", "input_shape": [3, 8, 8], "meta": {"family": "test"},
        "layers": [{"name": "conv", "op": "conv", "out_channels": 4, "kernel": 3, "stride": 2, "padding": "same"},
                   {"name": "bn", "op": "batchnorm"}]}


def assert_all_equal(names: list[str], backend: str, tmp_path) -> None:
    cases, dirs = [], []
    for i, name in enumerate(names):
        if name == "same_padding":
            spec = parse_spec(json.dumps(SAME))
            spec_state = (spec, onespec.init_state(spec, seed=3))
        else:
            spec_state = captured(name)
        spec, state = spec_state
        x = np.random.default_rng(1).standard_normal((2, *spec.input_shape)).astype(np.float32)
        cases.append((spec, state, x, None))
        dirs.append(str(tmp_path / str(i)))
        os.makedirs(dirs[-1])
    for name, r in zip(names, check_all(cases, backend, dirs)):
        assert r["eager"] <= TOLERANCE and r["compiled"] <= TOLERANCE and r["ok"], (name, backend, r)


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_generated_captured_networks_equal_build(backend, tmp_path):
    """A three-output network with PReLU, a pad, permutes and a softmax, a U-Net, and (Paddle,
    MindSpore) a conv padded more after than before."""
    require(backend)
    # torch's modules pad symmetrically: its generated form of that conv is refused
    assert_all_equal(["FaceHeads", "UNet"] + (["same_padding"] if backend != "torch" else []), backend, tmp_path)


def test_padding_that_differs_before_and_after_is_refused_in_torch():
    with pytest.raises(OnespecError, match="conv: padding that differs before and after"):
        codegen(parse_spec(json.dumps(SAME)), "torch")


def test_graph_forward_reads_like_handwritten_code():
    """A local per node that is read again, ``x`` along chains, merges as expressions, several
    outputs returned as a tuple; names that are no identifiers registered by name."""
    unet = codegen(captured("UNet")[0], "torch")
    assert "        enc1 = self.enc1(x)\n        x = self.pool(enc1)\n        enc2 = self.enc2(x)\n" in unet
    assert "        x = torch.cat([x, enc2], 1)\n" in unet and "        return self.out(x)\n" in unet
    faces = codegen(captured("FaceHeads")[0], "mindspore")
    assert "        block1_0 = getattr(self, 'block1-0')(x)\n" in faces
    assert "        return softmax, flatten_1, fc\n" in faces and "self._stem = Sequential(" in faces
    for src in (unet, faces, codegen(captured("UNet")[0], "paddle")):
        ast.parse(src)
        assert max(len(line) for line in src.splitlines()) <= 100


@pytest.mark.slow
@pytest.mark.parametrize("backend", FRAMEWORKS)
@pytest.mark.parametrize("name", ["densenet121", "googlenet", "mnasnet1_0", "regnet_x_400mf", "efficientnet_b0",
                                  "convnext_tiny", "ghostnet_100"])
def test_generated_torchvision_and_timm_captures_equal_build(name, backend, tmp_path):
    require(backend)
    assert_all_equal([name], backend, tmp_path)


CAPTURE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "capture")


@pytest.mark.slow
@pytest.mark.parametrize("source,to", [("paddle_models.py:build_pplcnet", "torch"),
                                       ("paddle_models.py:build_pplcnet", "mindspore"),
                                       ("mindspore_models.py:build_mnasnet", "torch"),
                                       ("mindspore_models.py:build_mnasnet", "paddle")])
def test_paddle_and_mindspore_captures_port_to_the_other_frameworks(source, to, tmp_path):
    """PaddleClas PP-LCNet_x1_0 from its Paddle layer and MindCV's mnasnet from its MindSpore cell
    (the Capture issue's other-framework sources), at their default 224 px, ported by ``onespec
    port``: the generated file equals onespec's build eager and compiled, the source framework's
    build and the model itself."""
    import subprocess

    require("torch", "paddle", "mindspore")
    out = tmp_path / "port"
    r = subprocess.run([sys.executable, "-m", "onespec", "port", os.path.join(CAPTURE_DIR, source),
                        "--input-shape", "3,224,224", "--to", to, "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = json.loads((out / "port.json").read_text())["rows"]
    assert len(rows) == 4 and all(row["ok"] for row in rows), rows
    assert rows[2]["against"].startswith(f"onespec's {'paddle' if 'paddle' in source else 'mindspore'} build")
