"""onespec diff names the node a deliberate discrepancy was put in, in each framework, and its
reproducer replays the mismatch."""
import subprocess
import sys

import numpy as np
import pytest

import onespec
from conftest import require
from onespec.backends import load_backend
from onespec.conformance.diff import diff, replay

pytestmark = pytest.mark.frameworks
SPEC = onespec.get_spec("mobilenet_v3_small", input_size=32)


def _inject(backend, net):
    if backend == "torch":  # a hardsigmoid slope of 1/5 (Keras') instead of 1/6
        net.get_submodule("features.block1.se.gate.hardsigmoid").slope = 1 / 5
        return "features.block1.se.gate.hardsigmoid"
    if backend == "paddle":  # off-by-one padding in one depthwise conv
        dict(net.named_sublayers())["features.block2.dw.conv"]._updated_padding = [2, 2]
        return "features.block2.dw.conv"
    import mindspore as ms  # one BN's inference epsilon
    dict(net.cells_and_names())["features.block3.body.dw.bn"].bn_infer = ms.ops.BatchNorm(is_training=False, epsilon=0.1)
    return "features.block3.body.dw.bn"


@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_diff_names_exactly_the_injected_node(backend, tmp_path):
    require(backend)
    be = load_backend(backend)
    assert diff(SPEC, backend).ok
    net = be.build(SPEC)
    path = _inject(backend, net)
    rep = diff(SPEC, backend, net, out=str(tmp_path))
    assert not rep.ok and rep.first["path"] == path, rep.table()
    before = rep.rows[:[r["path"] for r in rep.rows].index(path)]
    assert before and all(r["own"] is None or r["own"] <= rep.tol for r in before)
    assert rep.reproducer and (tmp_path / path / "node.json").exists()


def test_reproducer_replays_an_emitter_bug(tmp_path, monkeypatch):
    require("torch")
    from onespec.backends.torch import emit

    monkeypatch.setitem(emit.EMIT, "hardsigmoid", lambda n, x: emit.HardSigmoid(1 / 5, n.offset))
    rep = diff(SPEC, "torch", out=str(tmp_path))
    assert rep.first["path"] == "features.block1.se.gate.hardsigmoid"
    ok, err = replay(rep.reproducer, "torch")
    assert not ok and err > 1e-3
    monkeypatch.undo()
    assert replay(rep.reproducer, "torch")[0]
    r = subprocess.run([sys.executable, "-m", "onespec", "diff", "--replay", rep.reproducer, "--backend", "torch"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "within tolerance" in r.stdout
