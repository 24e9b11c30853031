"""onespec bench: onespec's network and the framework's zoo model timed side by side, in a child
process per framework (the speed targets themselves live in benchmarks/zoo_speed.py)."""
import json
import os
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
    for kind in ("eval", "train"):  # the rounds' own ratios bracket the ratio of the medians
        lo, hi = r[f"{kind}_ratio_range"]
        assert 0 < lo <= r[f"{kind}_ratio"] <= hi, (kind, lo, hi)
        assert f"{r[kind + '_ratio']:.2f} ({lo:.2f}-{hi:.2f})" in table(rows)
    assert set(r["peak_mb"]) == {"onespec", "reference", "onespec folded"} and r["peak_mb"]["onespec"] > 1
    assert "squeezenet1_1" in table(rows)


def test_bench_cli_refuses_a_model_without_a_zoo_reference(tmp_path):
    with pytest.raises(BenchError, match="no zoo reference for micronet_m0"):
        run(["micronet_m0"], ["torch"], [1])
    r = subprocess.run([sys.executable, "-m", "onespec", "bench", "hybridsn", "--backends", "paddle"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("onespec: error:") and "hybridsn" in r.stderr


@pytest.mark.slow
def test_bench_times_torch_build_options_beside_the_others():
    require("torch", "torchvision")
    (r,) = run(["squeezenet1_1"], ["torch"], [1], rounds=2, budget_s=0.3, torch_options=["channels_last"])
    assert set(r["eval"]) == {"onespec", "reference", "onespec channels_last", "reference channels_last"}
    assert r["eval_option_ratio"]["channels_last"] == pytest.approx(
        r["eval"]["onespec channels_last"] / r["eval"]["reference channels_last"], rel=1e-2)
    assert "channels_last" in table([r]) and "onespec channels_last" not in r["peak_mb"]
    with pytest.raises(BenchError, match="unknown build option fast; choose from channels_last, compile"):
        run(["squeezenet1_1"], ["torch"], [1], torch_options=["fast"])


@pytest.mark.parametrize("option", ["channels_last", pytest.param("compile", marks=pytest.mark.slow)])
def test_torch_build_options_keep_names_and_outputs(option):
    """channels-last and torch.compile change how torch runs the network, not what it computes
    or what its parameters are called (a checkpoint loads either way)."""
    require("torch")
    import numpy as np
    import onespec
    from onespec.backends import torch as tb
    spec = onespec.get_spec("shufflenet_v1", input_size=64, pool_padding="same", megvii_shuffle=True)
    state = onespec.init_state(spec, 0)
    plain, fast = tb.build(spec), tb.build(spec, **{option: True})
    assert list(fast.state_dict()) == list(plain.state_dict())
    tb.load_state(plain, spec, state)
    tb.load_state(fast, spec, state)
    x = np.random.default_rng(0).standard_normal((2, *spec.input_shape)).astype(np.float32)
    y, y_fast = tb.forward(plain, x)[0], tb.forward(fast, x)[0]
    assert np.abs(y_fast - y).max() <= 1e-5 * np.abs(y).max()


@pytest.mark.slow
def test_bench_folds_with_a_torch_option_and_gives_torchvision_the_option_too():
    require("torch", "torchvision")
    (r,) = run(["squeezenet1_1"], ["torch"], [1], rounds=2, budget_s=0.3, fold=True, torch_options=["channels_last"])
    assert set(r["eval"]) == {"onespec", "reference", "onespec folded", "onespec channels_last",
                              "reference channels_last", "onespec folded channels_last"}
    sp = r["folded_option_speedup"]["channels_last"]
    assert sp["vs reference"] == pytest.approx(r["eval"]["reference"] / r["eval"]["onespec folded channels_last"],
                                               rel=1e-2)
    assert sp["vs reference channels_last"] == pytest.approx(
        r["eval"]["reference channels_last"] / r["eval"]["onespec folded channels_last"], rel=1e-2)
    assert "folded channels_last" in table([r])
    assert set(r["peak_mb"]) == {"onespec", "reference", "onespec folded"}


@pytest.mark.slow
def test_bench_mindspore_against_mindcv_in_a_chosen_mode():
    """MindSpore's rows against MindCV's model, here with ``ms_mode="sync"`` (PYNATIVE without a
    launch queue); an unknown mode is refused before any child starts."""
    require("mindspore", "mindcv")
    (r,) = run(["squeezenet1_1"], ["mindspore"], [1], rounds=2, fold=True, budget_s=0.5, ms_mode="sync")
    assert r["framework"] == "mindspore sync" and r["reference"] == "MindCV"
    assert set(r["eval"]) == {"onespec", "reference", "onespec folded"} and all(v > 0 for v in r["eval"].values())
    assert r["folded_speedup"] == pytest.approx(r["eval"]["reference"] / r["eval"]["onespec folded"], rel=1e-2)
    with pytest.raises(BenchError, match="unknown run mode 'fast' of mindspore"):
        run(["squeezenet1_1"], ["mindspore"], [1], ms_mode="fast")


@pytest.mark.slow
def test_mindspore_sides_are_timed_each_in_its_own_process():
    """MindSpore's PYNATIVE state depends on a process's first ops, so each side is built and
    timed in a process of its own, driven over pipes; a side that cannot be built is an error
    that names it."""
    require("mindspore", "mindcv")
    from onespec.bench import _Isolated
    sides = [_Isolated("mindspore", "squeezenet1_1", 1, True, False, "pynative", label)
             for label in ("onespec", "reference")]
    try:
        assert len({s.proc.pid for s in sides} | {os.getpid()}) == 3
        for s in sides:
            assert s.trains and s.build_s > 0 and s.peak_mb > 0
            assert s.timer("eval")(1) > 0 and s.timer("train")(2) > 0
    finally:
        for s in sides:
            s.close()
    assert all(s.proc.poll() == 0 for s in sides)
    with pytest.raises(BenchError, match="'onespec nowhere' side's process ended"):
        _Isolated("mindspore", "squeezenet1_1", 1, False, False, "pynative", "onespec nowhere")


@pytest.mark.slow
def test_onnx_benchmark_times_both_exports_and_compares_the_graphs_onnxruntime_runs():
    """benchmarks/zoo_speed.py --onnx: onespec's folded export and torchvision's own, timed in
    onnxruntime, with the op counts of the graphs onnxruntime runs after its optimizations."""
    require("torch")
    pytest.importorskip("onnxruntime")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
    from zoo_speed import onnx_rows
    (r,) = onnx_rows(["squeezenet1_1"], [2], rounds=1, budget=0.2)
    assert r["same_optimized_graph"] and r["optimized_ops"]["torchvision"]["Conv"] == 26
    assert r["ratio"] == pytest.approx(r["ms"]["onespec folded"] / r["ms"]["torchvision"])
