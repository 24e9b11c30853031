"""onespec bench: onespec's network and the framework's zoo model timed side by side, in a child
process per framework (the speed targets themselves live in benchmarks/zoo_speed.py)."""
import json
import subprocess
import sys

import pytest

from conftest import require
from onespec.bench import BenchError, run, table

pytestmark = pytest.mark.frameworks


def test_bench_torch_rows_and_table():
    require("torch", "torchvision")
    rows = run(["squeezenet1_1"], ["torch"], [1], rounds=2, train=True, fold=True, budget_s=0.3)
    (r,) = rows
    assert r["reference"] == "torchvision" and r["batch"] == 1
    assert set(r["eval"]) == {"onespec", "reference", "onespec folded"} and set(r["train"]) == {"onespec", "reference"}
    assert all(v > 0 for v in r["eval"].values()) and r["eval_ratio"] == pytest.approx(
        r["eval"]["onespec"] / r["eval"]["reference"], rel=1e-2)
    assert r["build_s"]["onespec"] > 0 and "train_ratio" in r and "folded_speedup" in r
    assert set(r["peak_mb"]) == {"onespec", "reference", "onespec folded"} and r["peak_mb"]["onespec"] > 1
    assert "squeezenet1_1" in table(rows)


def test_bench_cli_refuses_a_model_without_a_zoo_reference(tmp_path):
    with pytest.raises(BenchError, match="no zoo reference for micronet_m0"):
        run(["micronet_m0"], ["torch"], [1])
    r = subprocess.run([sys.executable, "-m", "onespec", "bench", "hybridsn", "--backends", "paddle"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("onespec: error:") and "hybridsn" in r.stderr
