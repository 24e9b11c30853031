"""onespec export: every format made by its framework, loaded and run in its own runtime, matched
against the numpy reference (the command's own check, 1e-4), at two batch sizes. ``make test``
gives each of the five listed models one format (a Latin square: every model and every format
once), ``make slow`` every model in every format."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import onespec
from onespec.conformance.numerics import small_overrides
from onespec.export import FORMATS, ExportError, export
from onespec.spec.nodes import AdaptiveAvgPool, Conv, Flatten, Linear
from onespec.zoo.common import model

from conftest import require

pytestmark = pytest.mark.frameworks
MODELS = ["mobilenet_v2", "shufflenet_v2_x1_0", "micronet_m1", "resnet50", "hybridsn"]
FMTS = list(FORMATS)
SUFFIX = {"onnx": ".onnx", "onnx-paddle": ".onnx", "mindir": ".mindir", "paddle": "", "torch-export": ".pt2"}


def _export(name, fmt, tmp_path, fold=False):
    require(FORMATS[fmt][0], *(("onnxruntime",) if "onnx" in fmt else ()))
    from onespec.conformance.calibration import calibrate
    spec = onespec.get_spec(name, **small_overrides(name))
    out = str(tmp_path / f"{name}{SUFFIX[fmt]}")
    x = np.random.default_rng(0).standard_normal((4, *spec.input_shape)).astype(np.float32)
    state, _ = calibrate(spec, onespec.init_state(spec, 0), x)  # trained-like scales, as conformance does
    rep = export(spec, state, fmt, out, fold=fold)
    assert rep.checked and set(rep.rel_err) == {2, 3} and max(rep.rel_err.values()) <= 1e-4, rep.line()
    assert rep.files and all(os.path.exists(f) for f in rep.files)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".onespec")]  # nothing half-written left
    return rep


@pytest.mark.parametrize("i", range(len(MODELS)))
def test_each_format_runs_in_its_runtime(i, tmp_path):
    _export(MODELS[i], FMTS[i], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("name", MODELS)
def test_every_model_in_every_format(name, fmt, tmp_path):
    _export(name, fmt, tmp_path)


def test_folded_onnx_has_no_batchnorm(tmp_path):
    require("torch", "onnx", "onnxruntime")
    import onnx
    rep = _export("mobilenet_v2", "onnx", tmp_path, fold=True)
    ops = {n.op_type for n in onnx.load(rep.files[0]).graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops and rep.folded


def _pool_to_7():
    """A 3x3 map adaptively pooled to 7x7: ONNX has no adaptive pool; paddle2onnx emits an
    AveragePool with stride 3 // 7 = 0, which onnxruntime refuses to load."""
    return model("pool7", (3, 12, 12), [Conv(name="conv", out_channels=4, kernel=3, stride=4),
                                        AdaptiveAvgPool(name="pool", output_size=7), Flatten(name="flatten"),
                                        Linear(name="fc", out_features=3)], family="test", paper="", source="",
                 num_classes=3)


def test_a_node_the_format_cannot_express_is_named_and_nothing_is_written(tmp_path):
    require("paddle", "paddle2onnx", "onnxruntime")
    spec = _pool_to_7()
    with pytest.raises(ExportError, match=r"node pool \(adaptive_avgpool\)"):
        export(spec, onespec.init_state(spec, 0), "onnx-paddle", str(tmp_path / "p.onnx"))
    assert os.listdir(tmp_path) == []


def test_cli_export_with_a_checkpoint_and_bad_input(tmp_path):
    require("torch", "onnxruntime")
    from onespec.backends import load_backend
    spec = onespec.get_spec("squeezenet1_1", num_classes=10, input_size=64)
    be = load_backend("torch")
    net = be.build(spec)
    be.load_state(net, spec, onespec.init_state(spec, 3))
    be.save(net, str(tmp_path / "sq.pt"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "onespec", "export", *a], capture_output=True,  # noqa
                                    text=True, cwd=str(tmp_path))
    r = run("squeezenet1_1", "--set", "num_classes=10", "--set", "input_size=64", "--weights", "sq.pt",
            "--format", "torch-export",
            "-o", "sq.pt2")
    assert r.returncode == 0 and "ran in its runtime" in r.stdout, r.stderr[-2000:]
    import torch
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        got = torch.export.load(str(tmp_path / "sq.pt2")).module()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, be.forward(net, x)[0], rtol=1e-4, atol=1e-5)
    r = run("mobilenet_v2", "--weights", "sq.pt", "--format", "onnx", "-o", "m.onnx")  # another architecture
    assert r.returncode == 2 and r.stderr.startswith("onespec: error:") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
    r = run("squeezenet1_1", "--set", "input_size=64", "--format", "onnx", "-o", "nowhere/m.onnx")
    assert r.returncode == 2 and "does not exist" in r.stderr
