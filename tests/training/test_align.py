"""onespec align: the same training in three frameworks step by step; the framework given another
weight decay is caught and the differing field named, the others pass."""
import json
import os
import subprocess
import sys

import pytest

from conftest import require

pytestmark = pytest.mark.frameworks


def test_align_passes_the_same_recipe_and_names_a_different_one(tmp_path):
    require("torch", "paddle", "mindspore")
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))}
    out = tmp_path / "al"
    r = subprocess.run([sys.executable, "-m", "onespec", "align", "fixtures_data:tiny", "--steps", "4",
                        "--recipe-set", "optimizer.name=sgd", "--recipe-set", "optimizer.lr=0.05",
                        "--recipe-set", "optimizer.weight_decay=0.0005",
                        "--recipe-set-for", "paddle:optimizer.weight_decay=0.001",
                        "--out", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "NOT ALIGNED" in r.stdout and "same batches in every framework: yes" in r.stdout
    assert "paddle diverges from torch" in r.stdout and "optimizer.weight_decay: 0.001 in paddle, 0.0005 in torch" in r.stdout
    assert "mindspore diverges" not in r.stdout
    doc = json.load(open(out / "align.json"))
    assert [row["step"] for row in doc["rows"]] == [1, 2, 3, 4]
    assert all(row["dloss"]["mindspore"] <= row["tolerance"] for row in doc["rows"])
    assert all(p["rel"]["mindspore"] <= p["tolerance"] for p in doc["params"])
    assert [p["step"] for p in doc["params"]] == [0, 1, 2, 4] and doc["params"][1]["rel"]["paddle"] > doc["params"][1]["tolerance"]
    assert {e["backend"] for e in doc["environment"].values()} == {"torch", "paddle", "mindspore"}
    assert "tf32_matmul" in doc["environment"]["torch"] and doc["environment"]["mindspore"]["version"]
    assert (out / "align.png").stat().st_size > 10_000


def test_a_framework_difference_is_diagnosed_by_diff(tmp_path, monkeypatch):
    """Paddle's ReLU made to pass half the gradient inside align's children: the recipes are
    identical, so align runs onespec diff on paddle, which names the first ReLU in backward order."""
    require("torch", "paddle")
    from fixtures_data import paddle_relu_half_gradient_python

    from onespec.training.align import align

    monkeypatch.setattr(sys, "executable", paddle_relu_half_gradient_python(tmp_path / "py"))
    rep = align("fixtures_data:tiny", None, backends=["torch", "paddle"], steps=2, out=str(tmp_path / "al"),
                overrides={"optimizer.name": "sgd", "optimizer.lr": 0.05})
    assert not rep.ok and rep.framework_failures == ["paddle"], rep.table()
    line = rep.diagnosis["paddle"]
    assert "first divergence in paddle: backward: features.b2.relu (act)" in line, line
    assert "input gradient is off" in line and "torch" not in rep.diagnosis
    assert (tmp_path / "al" / "diff-paddle" / "features.b2.relu.backward" / "case.npz").exists()
    assert "diff: first divergence in paddle" in rep.table()
