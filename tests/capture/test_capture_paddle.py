"""Capture from Paddle: a ``paddle.nn.Layer``'s recorded forward becomes a spec whose tensors are
the layer's own ``state_dict`` entries (batch norm statistics by Paddle's ``_mean`` /
``_variance``, the Linear weight transposed), proven equal to the layer in every framework; what
cannot be captured is reported at once with its layer path and source line."""
import os

import numpy as np
import pytest

from onespec.backends import FRAMEWORKS

from conftest import require
from proving import capture_and_prove

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def models():
    require("paddle")
    from onespec.backends import load_backend

    load_backend("paddle")  # mindspore before paddle in this process (the backend's import order)
    import paddle_models
    return paddle_models


@pytest.mark.parametrize("frameworks", [("paddle", "torch"), pytest.param(FRAMEWORKS, marks=pytest.mark.slow)])
def test_small_lcnet_keeps_paddles_names_and_semantics(models, frameworks):
    """A split into two slices and a concat (the concat bound by ``from paddle import``), SE
    multiply, residual ``+``, downscale-in-infer dropout as a 0.8 scale, Paddle's hardsigmoid
    slope, BN momentum in onespec's convention, the Linear's [in, out] weight transposed."""
    require(*frameworks)
    from onespec.spec import nodes as N

    net = models.build_small_lcnet()
    spec, state, _ = capture_and_prove(net, (3, 16, 16), frameworks)
    rows = {r.path: r.node for r in __import__("onespec").analyze(spec).rows}
    assert spec.layers[0].name == "_stem" and not spec.aliases
    assert rows["dropout"] == N.Affine(name="dropout", scale=0.8)
    assert rows["se.gate"].slope == 0.1666667 and rows["_stem.1"].momentum == pytest.approx(0.1)
    assert spec.inputs == {"split_1": ["_stem"], "concat": ["split_1", "split"], "add": ["se", "concat"]}
    assert spec.layers[5].inputs == {"multiply": ["x", "gate"]}
    np.testing.assert_array_equal(state["fc.weight"], net.fc.weight.numpy().T)
    np.testing.assert_array_equal(state["_stem.1.running_var"], net._stem[1]._variance.numpy())


def test_pplcnet_at_a_small_input(models):
    """PaddleClas's PP-LCNet_x1_0 (its AdaptiveAvgPool2D subclass overrides forward: its functional
    pool is recorded) proven in Paddle; the slow test proves it at 224 in every framework."""
    spec, state, _ = capture_and_prove(models.build_pplcnet(), (3, 32, 32), ("paddle",))
    assert len(state) == 146 and [n.name for n in spec.layers][-5:] == ["last_conv", "act", "dropout", "flatten", "fc"]


def test_paddleclas_shufflenet_v2_keeps_its_names(models):
    """The old ``BatchNorm(act="relu")`` (a norm node, its relu beside it), ``paddle.split`` into
    slices, the channel shuffle's reshape-transpose-reshape, sublayers named ``2_1``."""
    spec, _, _ = capture_and_prove(models.paddleclas("ShuffleNetV2_x0_25"), (3, 32, 32), ("paddle",))
    assert [n.name for n in spec.layers][:3] == ["_conv1", "_max_pool", "2_1"]
    assert spec.layers[0].layers[1].op == "batchnorm" and spec.layers[0].layers[2].fn == "relu"


def test_what_cannot_be_captured_names_the_layer_and_line(models):
    from onespec.capture import CaptureError, capture

    with pytest.raises(CaptureError) as e:
        capture(models.build_unknown(), (3, 4, 4))
    problems = e.value.problems
    assert len(problems) == 2 and problems[0].startswith("block.1") and "logsigmoid" in problems[0]
    assert problems[1].startswith("tail") and "elu" in problems[1]
    with pytest.raises(CaptureError) as e:
        capture(models._Item().eval(), (3, 4, 4))
    item = [p for p in e.value.problems if "item()" in p]  # the mean over every dim is the other
    assert len(item) == 1 and "the forward depends on the data" in item[0] and "paddle_models.py" in item[0]
    with pytest.raises(CaptureError) as e:
        capture(models._Custom().eval(), (3, 4, 4))
    assert len(e.value.problems) == 1 and "custom PyLayer (paddle_models._Clip)" in e.value.problems[0]
    assert "paddle_models.py" in e.value.problems[0]


@pytest.mark.slow
def test_pplcnet_at_224_is_proven_in_every_framework(models):
    require(*FRAMEWORKS)
    _, _, result = capture_and_prove(models.build_pplcnet(), (3, 224, 224), FRAMEWORKS)
    assert set(result) == set(FRAMEWORKS)


@pytest.mark.slow
def test_capture_command_then_convert_the_original_pdparams(models, tmp_path, capsys):
    """``onespec capture paddle_models.py:build_pplcnet`` proven in every framework; the model's own
    ``paddle.save``d state_dict converts to torch with the captured spec, no name map."""
    require(*FRAMEWORKS)
    import json

    import paddle
    from onespec.cli import main

    out = tmp_path / "out"
    code = main(["capture", f"{HERE}/paddle_models.py:build_pplcnet", "--input-shape", "3,224,224", "-o", str(out)])
    assert code == 0, capsys.readouterr().err[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["names_are_the_modules_keys"] and all(r["ok"] for r in report["proof"][0]["frameworks"].values())
    net = models.build_pplcnet()
    paddle.save(net.state_dict(), str(tmp_path / "orig.pdparams"))
    assert main(["convert", str(tmp_path / "orig.pdparams"), "--arch", str(out / "spec.json"), "--to", "torch",
                 "-o", str(tmp_path / "net.pth")]) == 0
    from onespec.spec import parse_spec
    from onespec.weights import load_state
    spec = parse_spec((out / "spec.json").read_text())
    assert main(["convert", str(tmp_path / "net.pth"), "--arch", str(out / "spec.json"), "--to", "canonical",
                 "-o", str(tmp_path / "c.npz")]) == 0
    got, want = load_state(str(tmp_path / "c.npz"), spec), load_state(str(out / "weights.npz"), spec)
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k]) for k in want)
