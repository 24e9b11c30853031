"""onespec align: the same training in several frameworks, step by step; a recipe difference in one
framework is caught and named."""
import json
import os
import subprocess
import sys

import pytest

from conftest import require
from fixtures_data import tiny
from onespec.training import load_recipe
from onespec.training.align import align

pytestmark = pytest.mark.frameworks


def test_three_frameworks_align_and_report(tmp_path):
    require("torch", "paddle", "mindspore")
    rep = align(tiny(10, input_size=32), load_recipe(None, {"optimizer.name": "sgd", "optimizer.lr": 0.05,
                                                            "optimizer.weight_decay": 5e-4}),
                steps=5, out=str(tmp_path / "al"))
    assert rep.ok, rep.table()
    assert rep.digests_equal and [r["step"] for r in rep.rows] == [1, 2, 3, 4, 5]
    assert all(r["dloss"][b] <= r["tolerance"] for r in rep.rows for b in ("paddle", "mindspore"))
    assert [p["step"] for p in rep.params] == [0, 1, 2, 4, 5] and rep.params[0]["rel"]["paddle"] == 0.0
    doc = json.load(open(tmp_path / "al" / "align.json"))
    assert doc["ok"] and {e["backend"] for e in doc["environment"].values()} == {"torch", "paddle", "mindspore"}
    assert doc["environment"]["torch"]["version"] and "tf32_matmul" in doc["environment"]["torch"]
    assert (tmp_path / "al" / "align.png").stat().st_size > 10_000


def test_a_weight_decay_difference_is_named(tmp_path):
    require("torch", "paddle")
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))}
    r = subprocess.run([sys.executable, "-m", "onespec", "align", "fixtures_data:tiny", "--steps", "3",
                        "--backends", "torch,paddle", "--set", "optimizer.name=sgd", "--set", "optimizer.lr=0.05",
                        "--set", "optimizer.weight_decay=0.0005", "--set-for", "paddle:optimizer.weight_decay=0.001",
                        "--out", str(tmp_path / "al")], capture_output=True, text=True, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "NOT ALIGNED" in r.stdout
    assert "paddle diverges from torch" in r.stdout and "optimizer.weight_decay: 0.001 in paddle, 0.0005 in torch" in r.stdout
