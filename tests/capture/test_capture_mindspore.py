"""Capture from MindSpore (porting from Ascend to GPU stacks): a ``mindspore.nn.Cell``'s forward,
recorded in PYNATIVE mode, becomes a spec whose tensors are the cell's own parameter names
(``gamma`` / ``moving_mean`` ... by MindSpore's roles), proven equal to the cell in every
framework; what cannot be captured is reported with its cell path and source line."""
import os

import numpy as np
import pytest

from onespec.backends import FRAMEWORKS

from conftest import require
from proving import capture_and_prove

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def models():
    require("mindspore")
    from onespec.backends import load_backend

    load_backend("mindspore")
    import mindspore_models
    return mindspore_models


@pytest.mark.parametrize("frameworks", [("mindspore",), pytest.param(FRAMEWORKS, marks=pytest.mark.slow)])
def test_small_mnas_keeps_mindspores_names_and_semantics(models, frameworks):
    """``same`` padding (uneven at stride 2) as onespec's ``same``, BN momentum as stored (already
    onespec's convention), the residual ``+=`` and the gate's ``*`` as merges, a channel slice,
    ``ops.mean`` over H, W."""
    require(*frameworks)
    spec, _, _ = capture_and_prove(models.build_small_mnas(), (3, 16, 16), frameworks)
    rows = {r.path: r.node for r in __import__("onespec").analyze(spec).rows}
    assert spec.layers[0].name == "_stem" and not spec.aliases and rows["_stem.0"].padding == "same"
    assert rows["block.layers.1"].momentum == pytest.approx(0.01) and rows["mean"].axes == (1, 2)
    assert (rows["slice"].start, rows["slice"].stop) == (4, 12) and rows["block.layers.0"].padding == 0
    assert spec.inputs == {"concat": ["block", "_stem"], "mul": ["slice", "gate"]}
    assert spec.layers[1].inputs == {"add": ["layers", "x"]}


def test_what_cannot_be_captured_names_the_cell_and_line(models):
    from onespec.capture import CaptureError, capture

    with pytest.raises(CaptureError) as e:
        capture(models.build_unknown(), (3, 4, 4))
    assert len(e.value.problems) == 1 and "ops.elu has no onespec equivalent" in e.value.problems[0]
    assert "mindspore_models.py" in e.value.problems[0]
    with pytest.raises(CaptureError) as e:
        capture(models._Custom(), (3, 4, 4))
    assert len(e.value.problems) == 1 and e.value.problems[0].startswith("clip")
    assert "(mindspore_models._StraightThrough) defines its own bprop" in e.value.problems[0]


@pytest.mark.slow
def test_mindcv_mnasnet_at_224_is_proven_and_its_ckpt_converts(models, tmp_path):
    """Proven in every framework; the cell's own ``save_checkpoint`` file reads back by name into
    the captured canonical state (``onespec convert --to canonical``)."""
    require(*FRAMEWORKS)
    import mindspore as ms
    from onespec.cli import main
    from onespec.weights import load_state

    cell = models.build_mnasnet()
    spec, state, result = capture_and_prove(cell, (3, 224, 224), FRAMEWORKS)
    assert set(result) == set(FRAMEWORKS) and [n.name for n in spec.layers] == ["features", "pool", "classifier"]
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    ms.save_checkpoint(cell, str(tmp_path / "orig.ckpt"))
    assert main(["convert", str(tmp_path / "orig.ckpt"), "--arch", str(tmp_path / "spec.json"), "--to", "canonical",
                 "-o", str(tmp_path / "c.npz")]) == 0
    got = load_state(str(tmp_path / "c.npz"), spec)
    assert sorted(got) == sorted(state) and all(np.array_equal(got[k], state[k]) for k in state)


@pytest.mark.slow
def test_mindcv_ghostnet_at_224_is_proven_in_every_framework(models):
    """GhostNet's ghost modules (a concat, then ``out[:, :oup]``: the whole tensor at width 1.0),
    its ``+=`` shortcuts and its two-affine hard sigmoid."""
    require(*FRAMEWORKS)
    spec, _, result = capture_and_prove(models.build_ghostnet(), (3, 224, 224), FRAMEWORKS)
    rows = __import__("onespec").analyze(spec).rows
    assert set(result) == set(FRAMEWORKS) and not any(r.op == "slice" for r in rows)
    assert sum(r.op == "merge" and r.node.mode == "concat" for r in rows) == 32


@pytest.mark.slow
def test_capture_command_on_a_cell(models, tmp_path, capsys):
    """``onespec capture mindspore_models.py:build_small_mnas``: MindSpore here, torch and paddle
    each in a child; the report says the names are the cell's own."""
    require(*FRAMEWORKS)
    import json

    from onespec.cli import main

    out = tmp_path / "out"
    code = main(["capture", f"{HERE}/mindspore_models.py:build_small_mnas", "--input-shape", "3,16,16", "-o", str(out)])
    assert code == 0, capsys.readouterr().err[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["names_are_the_modules_keys"] and set(report["proof"][0]["frameworks"]) == set(FRAMEWORKS)
    assert all(r["ok"] for r in report["proof"][0]["frameworks"].values())
