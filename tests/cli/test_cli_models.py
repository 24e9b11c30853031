"""Every command that takes a model takes a spec file and a module:function (with and without a
recipe for the commands that read one), through the one resolver."""
import os

import pytest
import yaml

from conftest import require
from onespec.cli import main
from onespec.models import resolve
from onespec.weights import init_state, save_state

NET = '''
from onespec.spec import ModelSpec
from onespec.spec.nodes import Act, BatchNorm, Conv, Flatten, GlobalAvgPool, Linear


def net(num_classes: int = 10):
    """No input_size keyword: the digits' default size must not be forced on it."""
    return ModelSpec(name="clinet", input_shape=(3, 12, 12), meta={"family": "test", "num_classes": num_classes},
                     layers=[Conv(name="conv", out_channels=4, kernel=3, padding=1, bias=False),
                             BatchNorm(name="bn"), Act(name="relu", fn="relu"), GlobalAvgPool(name="pool"),
                             Flatten(name="flatten"), Linear(name="fc", out_features=num_classes)])
'''
FAST = {"epochs": 1, "max_steps": 2, "batch_size": 16, "eval_batch_size": 512}


@pytest.fixture
def here(tmp_path, monkeypatch):
    """cwd holding clinet.py, clinet.json (its spec) and w.npz (its weights)."""
    (tmp_path / "clinet.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    spec = resolve("clinet:net")
    (tmp_path / "clinet.json").write_text(spec.model_dump_json())
    save_state(init_state(spec, 0), str(tmp_path / "w.npz"))
    return tmp_path


def _recipe(here, model=None) -> str:
    doc = dict(FAST, **({"model": model} if model else {}))
    (here / "r.yaml").write_text(yaml.safe_dump(doc))
    return "r.yaml"


COMMANDS = {
    "show": (lambda m, here: ["show", m], None),
    "conformance": (lambda m, here: ["conformance", m, "--backends", "torch", "--no-static", "--batch", "1"],
                    "torch"),
    "convert": (lambda m, here: ["convert", "w.npz", "--arch", m, "--to", "torch", "-o", "w.pth"], "torch"),
    "train": (lambda m, here: ["train", m, "--max-steps", "2", "--batch-size", "16", "--no-progress",
                               "--out", "run"], "torch"),
    "train-recipe": (lambda m, here: ["train", "--recipe", _recipe(here, m), "--no-progress", "--out", "run"]
                     if m.endswith(".json") else ["train", m, "--recipe", _recipe(here), "--no-progress",
                                                  "--out", "run"], "torch"),
    "eval": (lambda m, here: ["eval", m, "--weights", "w.npz", "--recipe-set", "eval_batch_size=512"], "torch"),
    "eval-recipe": (lambda m, here: ["eval", "--recipe", _recipe(here, m), "--weights", "w.npz"]
                    if m.endswith(".json") else ["eval", m, "--recipe", _recipe(here), "--weights", "w.npz"],
                    "torch"),
    "bench": (lambda m, here: ["bench", m, "--backends", "torch", "--batch", "1", "--rounds", "1", "--budget", "0.2"],
              "torch"),
    "diff": (lambda m, here: ["diff", m, "--backend", "torch", "--out", "d"], "torch"),
    "export": (lambda m, here: ["export", m, "--format", "onnx", "-o", "m.onnx", "--batch", "1"], "torch"),
}


SLOW = {"export", "conformance", "bench"}  # ONNX export and check, a conformance worker, bench's children: 10-60 s


@pytest.mark.parametrize("model", ["clinet.json", "clinet:net"])
@pytest.mark.parametrize("command", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW else c
                                     for c in sorted(COMMANDS)])
def test_every_command_takes_a_spec_file_and_code(here, capsys, command, model):
    args, framework = COMMANDS[command]
    if framework:
        require(framework)
    code = main(args(model, here))
    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    assert "clinet" in out or command.startswith(("convert", "export", "train")), out
    if command.startswith("train"):
        assert "2 steps" in out and os.path.exists(here / "run" / "checkpoints" / "last.pth")
    if command == "convert":
        assert os.path.getsize(here / "w.pth") > 0
    if command == "export":
        assert os.path.getsize(here / "m.onnx") > 0


def test_schema_validates_spec_files(here, capsys):
    (here / "bad.json").write_text('{"name": "x"}')
    assert main(["schema", "--validate", "clinet.json"]) == 0
    assert "clinet.json: valid, clinet 3x12x12 -> 10" in capsys.readouterr().out
    assert main(["schema", "--validate", "bad.json"]) == 2
    assert "bad.json" in capsys.readouterr().err


def test_bench_times_a_model_without_a_zoo_counterpart_alone():
    from onespec.bench import has_reference, side_labels, spec_options, table

    assert side_labels(True, ("channels_last",), reference=False) == [
        "onespec", "onespec folded", "onespec channels_last", "onespec folded channels_last"]
    assert not has_reference("torch", "clinet.json") and has_reference("torch", "squeezenet1_1")
    assert spec_options("mindspore", "clinet.json") == {}
    row = {"framework": "torch", "model": "clinet.json", "batch": 1, "eval": {"onespec": 1.5},
           "build_s": {"onespec": 0.01}, "peak_mb": {"onespec": 3.0}}
    line = table([row]).splitlines()[1]
    assert line.split()[:5] == ["torch", "clinet.json", "1", "1.50", "nan"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ["clinet.json", "clinet:net"])
def test_align_takes_a_spec_file_and_code(here, capsys, model):
    require("torch", "paddle")
    assert main(["align", model, "--steps", "2", "--backends", "torch,paddle", "--out", "al"]) in (0, 1)
    out, err = capsys.readouterr()
    assert "clinet" in out and os.path.exists(here / "al" / "align.json"), err[-3000:]
