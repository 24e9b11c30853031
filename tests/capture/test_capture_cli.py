"""``onespec capture``: the face-heads network (PReLU, softmax, a permute before flatten,
ZeroPad2d, ``_`` names, three outputs) proven in torch, paddle and mindspore and written; a module that cannot be captured writes nothing and prints one line."""
import json
import os
import pytest

from onespec.backends import FRAMEWORKS

from conftest import require

HERE = os.path.dirname(os.path.abspath(__file__))


def _capture(target, out, *extra):
    """``onespec capture`` in this process (its proof still runs each framework in a child)."""
    from onespec.cli import main

    return main(["capture", target, "--input-shape", "3,16,16", "-o", str(out), *extra])


@pytest.mark.parametrize("frameworks", [("torch",), pytest.param(FRAMEWORKS, marks=pytest.mark.slow)])
def test_capture_command_proves_then_writes(tmp_path, frameworks, capsys):
    require(*frameworks)
    import numpy as np

    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(3).uniform(0, 1, (3, 3, 16, 16)).astype(np.float32))
    code = _capture(f"{HERE}/capture_models.py:build_face_heads", tmp_path / "out", "--input", str(x),
                    "--backends", *frameworks)
    assert code == 0, capsys.readouterr().err[-3000:]
    assert sorted(os.listdir(tmp_path / "out")) == ["report.json", "report.md", "spec.json", "weights.npz"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["names_are_the_modules_keys"] and [p["input"] for p in report["proof"]] == ["example", str(x)]
    for p in report["proof"]:
        assert set(p["frameworks"]) == set(frameworks)
        assert all(r["ok"] and len(r["errors"]) == 3 for r in p["frameworks"].values())
    from onespec.spec import parse_spec
    from onespec.weights import load_state
    spec = parse_spec((tmp_path / "out" / "spec.json").read_text())
    assert set(load_state(str(tmp_path / "out" / "weights.npz"), spec)) >= {"_stem.1.weight", "_blocks.1.weight"}


def test_capture_command_writes_nothing_for_what_it_cannot_capture(tmp_path, capsys):
    require("torch")
    code = _capture(f"{HERE}/capture_models.py:build_unsupported", tmp_path / "out")
    assert code == 2 and not (tmp_path / "out").exists()
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("onespec: error: cannot capture") and "block.1" in lines[-1] and "tail" in lines[-1]


def test_capture_command_refuses_bad_arguments_in_one_line_before_any_work(tmp_path):
    """Each in a fresh ``python -m onespec`` as a user runs it: exit 2, one line naming the
    argument, no traceback, no framework log line, nothing written."""
    import subprocess
    import sys

    import numpy as np

    require("torch")
    (tmp_path / "user.py").write_text(
        "import torch\n"
        "def needs_arg(num_classes):\n    return torch.nn.Linear(3, num_classes)\n"
        "def data_dependent():\n"
        "    class M(torch.nn.Module):\n"
        "        def forward(self, x):\n            return x.relu() if x.mean() > 0 else x\n"
        "    return M()\n")
    (tmp_path / "a_file").write_text("")
    np.save(tmp_path / "objects.npy", np.array([{}], dtype=object), allow_pickle=True)
    model = f"{HERE}/capture_models.py:build_face_heads"
    cases = {("user.py:needs_arg", "3,16,16"): "calling needs_arg() with no arguments raised TypeError",
             ("user.py:data_dependent", "3,16,16"): "data-dependent control flow",
             (model, "3,16,16", "-o", "a_file"): "-o a_file: a file is there",
             (model, "3,16,16,1,1"): "--input-shape '3,16,16,1,1': one sample's shape",
             (model, "3,0,16"): "--input-shape '3,0,16'",
             (model, "3,16,16", "--input", "objects.npy"): "--input objects.npy: not a .npy array of numbers",
             (model, "3,16,16", "--backends", "torch,tf"): "--backends: 'tf'; choose from"}
    for (target, shape, *extra), message in cases.items():
        out = ["-o", "out"] if "-o" not in extra else []
        r = subprocess.run([sys.executable, "-m", "onespec", "capture", target, "--input-shape", shape, *out, *extra],
                           capture_output=True, text=True, cwd=tmp_path)
        lines = [ln for ln in r.stderr.strip().splitlines() if not ln.startswith(("usage:", " "))]  # argparse's usage
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (target, shape, extra, r.stderr[-2000:])
        assert not (tmp_path / "out").exists()
