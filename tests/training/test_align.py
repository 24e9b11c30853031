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
    assert "paddle diverges from the float64 run" in r.stdout and "optimizer.weight_decay: 0.001 in paddle, 0.0005 in torch" in r.stdout
    assert "mindspore diverges" not in r.stdout
    doc = json.load(open(out / "align.json"))
    assert [row["step"] for row in doc["rows"]] == [1, 2, 3, 4]
    assert all(row["d64"][b] <= row["tolerance"] for row in doc["rows"] for b in ("torch", "mindspore"))
    assert all(p["rel64"][b] <= p["tolerance"] for p in doc["params"] for b in ("torch", "mindspore"))
    assert [p["step"] for p in doc["params"]] == [0, 1, 2, 4] and doc["params"][1]["rel64"]["paddle"] > doc["params"][1]["tolerance"]
    assert doc["yardstick"] == {"float32": "torch", "float64": "float64", "float32_ulp": "torch-ulp"}
    assert (out / "torch-ulp" / "snapshots" / "step_4.npz").exists()  # the second float32 draw trained
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
    assert "diff: first divergence in paddle" in rep.table() and "disagree" not in rep.table()


@pytest.mark.slow
def test_a_hand_written_network_is_aligned_in_three_frameworks_for_20_steps(tmp_path):
    """stem conv-BN-ReLU, max pool, global pool, linear, given as ``module:function``: two
    correct frameworks part only by float32 rounding, which the float64 yardstick explains."""
    require("torch", "paddle", "mindspore")
    _align_tinymod(tmp_path, "tinymod:tiny")


@pytest.mark.slow
def test_a_hand_written_network_given_as_a_spec_file_is_aligned(tmp_path):
    require("torch", "paddle", "mindspore")
    from tinymod import tiny

    from onespec.spec import parse_spec
    from onespec.training.align import align

    path = tmp_path / "tinymod.json"
    path.write_text(tiny().model_dump_json())
    # the spec file as read (the CLI's reading of a spec file with a recipe is the model resolver's)
    rep = align(parse_spec(path.read_bytes()), None, steps=20, out=str(tmp_path / "al"))
    assert rep.ok and set(rep.excess) == {"torch", "paddle", "mindspore"}, rep.table()
    assert all(0 < e <= 1 for e in rep.excess.values()), rep.excess


def _align_tinymod(tmp_path, model: str):
    here = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.path.dirname(here)])}
    out = tmp_path / "al"
    r = subprocess.run([sys.executable, "-m", "onespec", "align", model, "--steps", "20", "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=here)
    assert r.returncode == 0 and "\nALIGNED\n" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    doc = json.load(open(out / "align.json"))
    assert doc["ok"] and doc["steps"] == 20 and set(doc["excess"]) == {"torch", "paddle", "mindspore"}
    assert all(0 < doc["excess"][b] <= 1 for b in doc["excess"])


def test_align_and_diff_disagreeing_name_the_inconclusive_one():
    from onespec.training.align import MARGINAL, disagreement

    assert "align is inconclusive" in disagreement("paddle", 1.2)
    assert "diff is inconclusive" in disagreement("paddle", MARGINAL * 3)
