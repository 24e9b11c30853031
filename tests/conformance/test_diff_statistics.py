"""diff's running-statistics check measures what a statistic can resolve: a BN whose input is
centred (an expand convolution after a BN with zero shift, as in MobileNetV2) has running means
~1e-8 of the channel's spread, which float32 cannot resolve in any framework; compared to the
channel's spread they agree, and a real momentum bug is still named, with a reproducer that
agrees with the verdict."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import require
from onespec.backends import load_backend
from onespec.conformance.diff import diff, replay
from onespec.spec.nodes import Act, BatchNorm, Conv, Flatten, GlobalAvgPool, Linear
from onespec.weights import init_state, save_state
from onespec.zoo.common import model

pytestmark = pytest.mark.frameworks
EXPAND = "expand.bn"


def centred():
    """stem conv-BN-ReLU, a 1x1 projection to a BN with zero shift, a 1x1 expansion to a BN (its
    input's batch mean is zero in exact arithmetic), ReLU6, global pool, linear."""
    def cbn(name, out, k, act=None):
        from onespec.spec.nodes import Sequential
        return Sequential(name=name, layers=[Conv(name="conv", out_channels=out, kernel=k, padding=k // 2, bias=False),
                                             BatchNorm(name="bn"), *([Act(name="act", fn=act)] if act else [])])
    return model("centred", (3, 8, 8), [cbn("stem", 8, 3, "relu"), cbn("project", 8, 1), cbn("expand", 24, 1, "relu6"),
                                        GlobalAvgPool(name="pool"), Flatten(name="flat"), Linear(name="fc", out_features=10)],
                 family="test", paper="", source="", num_classes=10)


def trained_statistics(spec, batches: int = 30, seed: int = 1) -> dict:
    """Training's running statistics (train-mode forwards on shifted, scaled batches, momentum
    0.1) from the training initialisation (BN shift 0): what a network's checkpoint holds."""
    be = load_backend("torch")
    net = be.build(spec)
    be.load_state(net, spec, init_state(spec, 0, scheme="train"))
    rng = np.random.default_rng(seed)
    for _ in range(batches):
        x = rng.standard_normal((8, *spec.input_shape)) * 0.5 + rng.standard_normal((1, spec.input_shape[0], 1, 1))
        be.node_io(net, x.astype(np.float32), train=True)
    return be.get_state(net, spec)


def _diff_cli(spec_or_name, backend, tmp_path, *extra):
    r = subprocess.run([sys.executable, "-m", "onespec", "diff", spec_or_name, "--backend", backend, "--mode", "train",
                        "--backward", "--out", str(tmp_path / f"diff-{backend}"), *extra],
                       capture_output=True, text=True)
    return r, json.load(open(tmp_path / f"diff-{backend}" / "diff.json"))


@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_centred_running_means_agree_in_every_framework(backend, tmp_path):
    require("torch", backend)
    spec = centred()
    state = trained_statistics(spec)
    mean, var = state[f"{EXPAND}.running_mean"], state[f"{EXPAND}.running_var"]
    assert np.linalg.norm(mean) < 1e-5 * np.linalg.norm(np.sqrt(var))  # the case: means far below the spread
    spec_path, weights = tmp_path / "centred.json", tmp_path / "trained.npz"
    spec_path.write_text(spec.model_dump_json())
    save_state(state, str(weights))
    r, doc = _diff_cli(str(spec_path), backend, tmp_path, "--weights", str(weights))
    assert r.returncode == 0 and "no divergence" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    row = next(x for x in doc["rows"] if x["path"] == EXPAND)
    assert row["stats"] <= row["stats_limit"] < 1e-3


def test_a_wrong_momentum_is_named_and_its_reproducer_agrees(tmp_path, monkeypatch):
    """A Paddle emitter that passes a momentum of 0.2: outputs right, statistics named; the
    reproducer mismatches with the bug and replays within its bound without it."""
    require("torch", "paddle")
    from onespec.backends.paddle import emit

    spec = centred()
    state = trained_statistics(spec)
    orig = emit.EMIT["batchnorm"]
    monkeypatch.setitem(emit.EMIT, "batchnorm", lambda n, x: orig(n.model_copy(update={"momentum": 0.2}), x))
    rep = diff(spec, "paddle", state=state, mode="train", out=str(tmp_path))
    assert rep.first and "running statistics" in rep.first["why"], rep.table()
    assert rep.first["path"] == "stem.bn" and rep.first["stats"] > 10 * rep.first["stats_limit"]
    ok, err = replay(rep.reproducer, "paddle")
    assert not ok and err > 1e-3
    monkeypatch.undo()
    ok, err = replay(rep.reproducer, "paddle")
    assert ok, err


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_mobilenet_v2_with_trained_statistics_passes_train_mode_and_backward(backend, tmp_path):
    """MobileNetV2's expand BNs after a block without a shortcut see centred inputs: the false alarm
    torchvision's pretrained weights raised in every framework."""
    require("torch", backend)
    from onespec.models import resolve

    spec = resolve("mobilenet_v2", {"input_size": 32})
    state = trained_statistics(spec)
    assert np.abs(state["features.stage2.block0.expand.bn.running_mean"]).mean() < 1e-6
    weights = tmp_path / "trained.npz"
    save_state(state, str(weights))
    r, doc = _diff_cli("mobilenet_v2", backend, tmp_path, "--weights", str(weights), "--set", "input_size=32")
    assert r.returncode == 0 and "no divergence" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
