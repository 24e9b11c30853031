"""Every CLI command over hostile inputs (files, recipes, values, paths, code references, run
directories): each case runs ``python -m onespec`` once and must refuse with exit code 2, exactly
one line on stderr and no traceback, before any framework is imported or any training starts."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOT_UTF8 = b"model: squeezenet1_1\nepochs: 2 # \xff\xfe caf\xe9\n"


def _files(d: pathlib.Path) -> None:
    """The hostile files the cases name, all in the case's working folder."""
    (d / "empty.npz").write_bytes(b"")
    (d / "random.npz").write_bytes(os.urandom(4096))
    (d / "random.pth").write_bytes(os.urandom(4096))
    (d / "text.npz").write_text("not a zip archive\n")
    with zipfile.ZipFile(d / "whole.npz", "w") as z:
        z.writestr("a.npy", b"\x93NUMPY" + os.urandom(512))
    (d / "truncated.npz").write_bytes((d / "whole.npz").read_bytes()[:100])
    (d / "adir.npz").mkdir()
    (d / "notutf8.yaml").write_bytes(NOT_UTF8)
    (d / "notutf8.json").write_bytes(b'{"name": "caf\xe9"}')
    (d / "empty.json").write_text("")
    (d / "truncated.json").write_text('{"name": "net", "input_shape": [3, 8')
    (d / "list.yaml").write_text("- 1\n- 2\n")
    (d / "dup.yaml").write_text("epochs: 2\nepochs: 3\n")
    (d / "epochs.yaml").write_text("epochs: 1e8\n")
    (d / "epochs_big.yaml").write_text("epochs: 100000000\n")
    (d / "pad.yaml").write_text("train_transforms:\n  - {op: random_crop, size: 32, padding: 1000000}\n")
    (d / "lr_nan.yaml").write_text("optimizer: {lr: .nan}\n")
    (d / "batch0.yaml").write_text("batch_size: 0\n")
    (d / "code.yaml").write_text("model: logging:basicConfig\n")
    spec = {"name": "net", "input_shape": [8, 4, 4], "meta": {"family": "custom", "num_classes": 16}, "layers": [
        {"op": "shift_max", "name": "act", "groups": 2, "fusions": 1, "gate": {
            "op": "seq", "name": "shift", "layers": [
                {"op": "global_avgpool", "name": "pool"}, {"op": "flatten", "name": "flat"},
                {"op": "linear", "name": "fc", "out_features": 16}]}}]}
    (d / "shift_gate.json").write_text(json.dumps(spec))
    (d / "mymod.py").write_text("def net():\n    return None\n")
    (d / "label_map.json").write_text("[1, 2]")
    run = d / "torn_metrics"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"model": "squeezenet1_1", "backend": "torch"}))
    (run / "metrics.jsonl").write_text('{"epoch": 0, "step": 10}\n{"epoch": 1, "st')
    run = d / "torn_run"
    run.mkdir()
    (run / "run.json").write_text('{"model": "squeezenet1_1", "back')


# (id, argv): each must be refused with one line on stderr and exit code 2
CASES = [
    # files
    ("show-missing-spec", ["show", "missing.json"]),
    ("show-empty-spec", ["show", "empty.json"]),
    ("show-truncated-spec", ["show", "truncated.json"]),
    ("show-notutf8-spec", ["show", "notutf8.json"]),
    ("show-unknown-model", ["show", "no_such_net"]),
    ("show-bad-override", ["show", "squeezenet1_1", "--set", "num_classes=-3"]),
    ("show-nan-override", ["show", "squeezenet1_1", "--set", "num_classes=NaN"]),
    ("show-shift-max-gate-named-shift", ["show", "shift_gate.json"]),
    ("convert-missing", ["convert", "missing.pth", "--arch", "squeezenet1_1", "--to", "canonical", "-o", "o.npz"]),
    ("convert-empty", ["convert", "empty.npz", "--arch", "squeezenet1_1", "--to", "torch", "-o", "o.pth"]),
    ("convert-random-npz", ["convert", "random.npz", "--arch", "squeezenet1_1", "--to", "torch", "-o", "o.pth"]),
    ("convert-text-npz", ["convert", "text.npz", "--arch", "squeezenet1_1", "--to", "torch", "-o", "o.pth"]),
    ("convert-truncated-npz", ["convert", "truncated.npz", "--arch", "squeezenet1_1", "--to", "torch",
                               "-o", "o.pth"]),
    ("convert-directory", ["convert", "adir.npz", "--arch", "squeezenet1_1", "--to", "torch", "-o", "o.pth"]),
    ("convert-unknown-arch", ["convert", "whole.npz", "--arch", "no_such_net", "--to", "torch", "-o", "o.pth"]),
    ("eval-missing-weights", ["eval", "squeezenet1_1", "--weights", "missing.npz"]),
    ("diff-missing-spec", ["diff", "missing.json"]),
    ("diff-bad-map", ["diff", "squeezenet1_1", "--foreign", "mymod:net", "--map", "label_map.json"]),
    ("export-missing-weights", ["export", "squeezenet1_1", "--format", "onnx", "-o", "o.onnx",
                                "--weights", "missing.npz"]),
    # recipes
    ("train-missing-recipe", ["train", "squeezenet1_1", "--recipe", "missing.yaml"]),
    ("train-notutf8-recipe", ["train", "squeezenet1_1", "--recipe", "notutf8.yaml"]),
    ("train-list-recipe", ["train", "squeezenet1_1", "--recipe", "list.yaml"]),
    ("train-duplicate-keys", ["train", "squeezenet1_1", "--recipe", "dup.yaml"]),
    ("train-epochs-1e8", ["train", "squeezenet1_1", "--recipe", "epochs.yaml"]),
    ("train-epochs-huge", ["train", "squeezenet1_1", "--recipe", "epochs_big.yaml"]),
    ("train-crop-padding-1e6", ["train", "squeezenet1_1", "--recipe", "pad.yaml"]),
    ("train-lr-nan", ["train", "squeezenet1_1", "--recipe", "lr_nan.yaml"]),
    ("train-batch-0-recipe", ["train", "squeezenet1_1", "--recipe", "batch0.yaml"]),
    ("eval-notutf8-recipe", ["eval", "squeezenet1_1", "--weights", "whole.npz", "--recipe", "notutf8.yaml"]),
    ("align-notutf8-recipe", ["align", "squeezenet1_1", "--recipe", "notutf8.yaml"]),
    # values
    ("train-batch-size-0", ["train", "squeezenet1_1", "--batch-size", "0"]),
    ("train-epochs-negative", ["train", "squeezenet1_1", "--epochs", "-1"]),
    ("train-workers-negative", ["train", "squeezenet1_1", "--workers", "-1"]),
    ("train-missing-data", ["train", "squeezenet1_1", "--data", "missing_folder"]),
    ("align-steps-0", ["align", "squeezenet1_1", "--steps", "0"]),
    ("align-unknown-backend", ["align", "squeezenet1_1", "--backends", "torch,nosuchfw"]),
    ("bench-batch-0", ["bench", "squeezenet1_1", "--batch", "0"]),
    ("bench-batch-text", ["bench", "squeezenet1_1", "--batch", "one"]),
    ("bench-rounds-0", ["bench", "squeezenet1_1", "--rounds", "0"]),
    ("bench-budget-nan", ["bench", "squeezenet1_1", "--budget", "nan"]),
    ("bench-budget-negative", ["bench", "squeezenet1_1", "--budget", "-1"]),
    ("bench-unknown-model", ["bench", "no_such_net"]),
    ("conformance-batch-0", ["conformance", "squeezenet1_1", "--batch", "0"]),
    ("conformance-unknown-model", ["conformance", "no_such_net"]),
    ("export-batch-0", ["export", "squeezenet1_1", "--format", "onnx", "-o", "o.onnx", "--batch", "0"]),
    ("export-opset-0", ["export", "squeezenet1_1", "--format", "onnx", "-o", "o.onnx", "--opset", "0"]),
    ("capture-bad-shape", ["capture", "mymod:net", "--input-shape", "3,x,8", "-o", "cap"]),
    ("capture-negative-shape", ["capture", "mymod:net", "--input-shape", "3,-8,8", "-o", "cap"]),
    # paths
    ("export-output-is-folder", ["export", "squeezenet1_1", "--format", "onnx", "-o", "adir.npz/"]),
    ("export-missing-parent", ["export", "squeezenet1_1", "--format", "onnx", "-o", "nowhere/o.onnx"]),
    ("export-parent-is-a-file", ["export", "squeezenet1_1", "--format", "onnx", "-o", "whole.npz/o.onnx"]),
    ("convert-output-is-folder", ["convert", "whole.npz", "--arch", "squeezenet1_1", "--to", "torch",
                                  "-o", "adir.npz"]),
    ("convert-missing-parent", ["convert", "whole.npz", "--arch", "squeezenet1_1", "--to", "torch",
                                "-o", "nowhere/o.pth"]),
    # code references
    ("diff-module-not-found", ["diff", "squeezenet1_1", "--foreign", "no_such_module:net"]),
    ("diff-foreign-file-path", ["diff", "squeezenet1_1", "--foreign", "./mymod.py:net"]),
    ("diff-foreign-returns-none", ["diff", "squeezenet1_1", "--backend", "torch", "--foreign", "mymod:net"]),
    ("diff-foreign-no-function", ["diff", "squeezenet1_1", "--foreign", "mymod"]),
    ("export-module-not-found", ["export", "no_such_module:net", "--format", "onnx", "-o", "o.onnx"]),
    ("show-recipe-code", ["train", "--recipe", "code.yaml"]),
    ("capture-module-not-found", ["capture", "no_such_module:net", "--input-shape", "3,8,8", "-o", "cap"]),
    # run directories
    ("train-resume-torn-metrics", ["train", "squeezenet1_1", "--out", "torn_metrics", "--resume"]),
    ("train-resume-torn-run-json", ["train", "squeezenet1_1", "--out", "torn_run", "--resume"]),
    ("train-resume-missing-run", ["train", "squeezenet1_1", "--out", "no_run", "--resume"]),
]


# these import a framework (the resumed trainer, the foreign network's loader): `make slow`
SLOW = {"train-resume-torn-metrics", "train-resume-torn-run-json", "train-resume-missing-run",
        "diff-foreign-file-path", "diff-foreign-returns-none"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    _files(d)
    return d


def _run(argv: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "onespec", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, errors="replace", timeout=60)


@pytest.mark.parametrize("argv", [pytest.param(argv, id=name, marks=[pytest.mark.slow] if name in SLOW else [])
                                  for name, argv in CASES])
def test_bad_input_is_one_line_and_exit_2(folder, argv):
    proc = _run(argv, folder)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:], proc.stdout[-1000:])
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("onespec: error: "), lines[0]


def test_module_not_found_hints_at_the_current_folder(folder):
    """``module:function`` naming a module that is not importable says where Python looked."""
    proc = _run(["export", "no_such_module:net", "--format", "onnx", "-o", "o.onnx"], folder)
    assert proc.returncode == 2
    assert "PYTHONPATH" in proc.stderr or "current folder" in proc.stderr, proc.stderr
