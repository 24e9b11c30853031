"""onespec diff names the node a deliberate discrepancy was put in, in each framework, and its
reproducer replays the mismatch."""
import json
import subprocess
import sys

import numpy as np
import pytest

import onespec
from conftest import require
from onespec.backends import load_backend
from onespec.conformance.diff import diff, replay
from onespec.conformance.numerics import without_dropout

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


def test_foreign_mindcv_network_is_read_through_its_library_map():
    """A MindSpore network of MindCV's, given as a foreign network: no map passed, MindCV's is the
    one whose names it has; every module agrees with the reference."""
    require("mindspore", "mindcv")
    import mindcv

    from onespec.conformance.diff import diff_foreign

    spec = onespec.get_spec("mobilenet_v1", input_size=64)
    net = mindcv.create_model("mobilenet_v1_100", num_classes=1000)
    net.set_train(False)
    rep = diff_foreign(spec, net, "mindspore")
    assert rep.ok and len(rep.rows) == 28 + 27, rep.table()  # 27 convs + 27 BNs + the classifier


def test_foreign_torchvision_network_against_onespec_builds(tmp_path):
    require("torch", "torchvision", "mindspore")
    import torch
    import torchvision

    from onespec.conformance.diff import diff_foreign
    from onespec.importers import from_torchvision

    spec = onespec.get_spec("squeezenet1_1", input_size=64)
    torch.manual_seed(0)
    tv = torchvision.models.squeezenet1_1().eval()
    rep = diff_foreign(spec, tv, "torch")
    assert rep.ok and len(rep.rows) == 26, rep.table()   # 26 convs: conv1, 8 fires x 3, the classifier
    state = from_torchvision(spec, {k: v.numpy() for k, v in tv.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    want = tv(torch.from_numpy(x)).detach().numpy()
    for backend in ("torch", "mindspore"):  # onespec's builds with the hand-written network's weights
        assert diff(spec, backend, state=state).ok
        be = load_backend(backend)
        net = be.build(spec)
        be.load_state(net, spec, state)
        np.testing.assert_allclose(be.forward(net, x)[0], want, rtol=1e-4, atol=1e-5)
    tv.features[6].expand3x3.padding = (0, 0)    # a hand-port's typo: fire4's 3x3 expand without padding
    rep = diff_foreign(spec, tv, "torch")
    assert rep.first["path"] == "features.fire4.expand.expand3x3.conv" and rep.first["foreign"] == "features.6.expand3x3"
    (tmp_path / "myport.py").write_text(
        "import torch, torchvision\n"
        "def net():\n"
        "    torch.manual_seed(0)\n"
        "    m = torchvision.models.squeezenet1_1().eval()\n"
        "    m.features[6].expand3x3.padding = (0, 0)\n"
        "    return m\n")
    r = subprocess.run([sys.executable, "-m", "onespec", "diff", "squeezenet1_1", "--set", "input_size=64",
                        "--backend", "torch", "--foreign", "myport:net"], capture_output=True, text=True,
                       cwd=str(tmp_path), env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 1 and "FIRST DIVERGENCE (eval forward): features.fire4.expand.expand3x3.conv" in r.stdout, \
        r.stderr[-1500:]
    assert "(features.6.expand3x3)" in r.stdout


def test_train_mode_names_a_wrong_bn_momentum(tmp_path):
    """Paddle weights the running value: a port that passes torch's 0.01 unchanged (instead of
    0.99) has the same outputs in eval and train mode and only its running statistics differ."""
    require("paddle")
    be = load_backend("paddle")
    net = be.build(SPEC)
    dict(net.named_sublayers())["features.block2.project.bn"]._momentum = 0.01
    assert diff(SPEC, "paddle", net).ok  # eval mode cannot see it
    rep = diff(SPEC, "paddle", net, mode="train")
    assert rep.first["path"] == "features.block2.project.bn" and "running statistics" in rep.first["why"], rep.table()
    assert rep.first["own"] <= rep.tol


def _inject_backward(backend, net):
    """Forward-identical, backward-wrong discrepancies: a doubled weight gradient (torch), an
    activation whose gradient is halved by a detached half (paddle, mindspore)."""
    if backend == "torch":
        conv = net.get_submodule("features.block2.dw.conv")
        conv.weight.register_hook(lambda g: 2 * g)
        return "features.block2.dw.conv"
    if backend == "paddle":
        act = dict(net.named_sublayers())["features.block1.se.gate.relu"]
        f = act.forward
        act.forward = lambda x: (lambda y: 0.5 * y + 0.5 * y.detach())(f(x))  # f once: it may work in place
        return "features.block1.se.gate.relu"
    import mindspore as ms
    act = dict(net.cells_and_names())["features.block3.body.expand.relu"]
    f = act.construct
    act.construct = lambda x: 0.5 * f(x) + 0.5 * ms.ops.stop_gradient(f(x))
    return "features.block3.body.expand.relu"


# make test: paddle in train mode; make slow: torch in eval mode and mindspore in train mode too
@pytest.mark.parametrize("backend,mode", [pytest.param("torch", "eval", marks=pytest.mark.slow), ("paddle", "train"),
                                          pytest.param("mindspore", "train", marks=pytest.mark.slow)])
def test_backward_diff_names_exactly_the_injected_node(backend, mode, tmp_path):
    require(backend, "torch")
    be = load_backend(backend)
    spec = without_dropout(SPEC)  # a network given in train mode is built without dropout (diff notes it)
    net = be.build(spec)
    path = _inject_backward(backend, net)
    rep = diff(spec, backend, net, mode=mode, backward=True, out=str(tmp_path))
    assert rep.first is None, rep.table()  # the forward is right
    assert rep.backward_first["path"] == path and rep.backward_first["leaf"], rep.table()
    assert rep.backward_first["dw" if backend == "torch" else "dx"] > 0.1
    # every node is replayed on the reference's input and output gradient: all the others are
    # within their bounds (the injected node's ancestors contain it)
    bad = {r["path"] for r in rep.backward_rows if max(r["dx"], r["dw"] or 0.0) > r["limit"]}
    assert bad and all(path == b or path.startswith(b + ".") for b in bad), bad
    assert len(rep.backward_rows) > 100
    assert (tmp_path / f"{path}.backward" / "case.npz").exists()
    assert rep.environment[backend]["version"] and rep.environment["torch"]["version"]


def test_backward_reproducer_replays_an_emitter_bug(tmp_path, monkeypatch):
    """A paddle emitter whose ReLU passes half the gradient: named in backward, replayed from the
    reproducer in a fresh build, and gone once the emitter is right."""
    require("paddle", "torch")
    import paddle
    from onespec.backends.paddle import emit

    class HalfGradReLU(paddle.nn.ReLU):
        def forward(self, x):
            y = super().forward(x)
            return 0.5 * y + 0.5 * y.detach()

    acts = dict(emit._ACTS, relu=HalfGradReLU)
    monkeypatch.setattr(emit, "_ACTS", acts)
    rep = diff(SPEC, "paddle", mode="train", backward=True, out=str(tmp_path))
    assert rep.first is None and rep.backward_first["op"] == "act", rep.table()
    assert rep.backward_first["path"] == next(r["path"] for r in rep.backward_rows if r["op"] == "act"
                                              and r["path"].endswith("relu"))
    ok, err = replay(rep.backward_reproducer, "paddle")
    assert not ok and err > 0.1
    monkeypatch.undo()
    assert replay(rep.backward_reproducer, "paddle")[0]
    r = subprocess.run([sys.executable, "-m", "onespec", "diff", "squeezenet1_1", "--set", "input_size=48",
                        "--backend", "paddle", "--mode", "train", "--backward", "--deterministic",
                        "--out", str(tmp_path / "cli")], capture_output=True, text=True)
    assert r.returncode == 0 and "no divergence" in r.stdout and "forward and backward" in r.stdout, r.stderr[-2000:]
    report = json.loads((tmp_path / "cli" / "diff.json").read_text())
    assert report["environment"]["requested"]["deterministic"] is True and report["backward_rows"]
    assert report["environment"]["paddle"]["FLAGS_cudnn_deterministic"] in (True, "1")
