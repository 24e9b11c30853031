"""``onespec port``: from a torchvision checkpoint (a randomly initialised torchvision model's
state_dict: no downloads) to a directory with the generated source, the native checkpoint, a
README whose table comes from the run, and port.json; a failing check writes only its report."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import require
from onespec.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torchvision_checkpoint(arch: str, path: str) -> str:
    """A torchvision model's random state_dict, saved in a child (torch stays out of this process)."""
    code = (f"import torch, torchvision; torch.manual_seed(0); "
            f"torch.save(torchvision.models.{arch}().state_dict(), {path!r})")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fw", ["paddle", "mindspore"])
def test_port_from_torchvision_checkpoint(fw, tmp_path, capsys):
    require("torch", "torchvision", fw)
    ck = torchvision_checkpoint("squeezenet1_1", str(tmp_path / "squeezenet1_1.pth"))
    out = tmp_path / "port"
    assert main(["port", "squeezenet1_1", "--to", fw, "--weights", ck, "--set", "input_size=64",
                 "-o", str(out)]) == 0
    ext = {"paddle": "pdparams", "mindspore": "ckpt"}[fw]
    assert sorted(os.listdir(out)) == sorted(["README.md", "model.py", "port.json", f"weights.{ext}"])
    report = json.loads((out / "port.json").read_text())
    assert report["ok"] and len(report["rows"]) == 3
    assert all(r["max_rel_err"] <= r["tolerance"] for r in report["rows"])
    readme = (out / "README.md").read_text()
    for r in report["rows"]:  # the table is the run's
        assert f"{r['max_rel_err']:.2e}" in readme
    assert "squeezenet1_1.pth" in readme and "Iandola" in readme


def test_failing_port_writes_only_its_report(tmp_path, monkeypatch):
    require("torch")
    import onespec.port as port_mod
    from onespec.codegen import codegen as real

    # a generated file that computes something else: its check must fail
    monkeypatch.setattr(port_mod, "codegen", lambda spec, fw: re.sub(r"nn\.ReLU\([^)]*\)", "nn.Sigmoid()", real(spec, fw)))
    out = tmp_path / "port"
    assert main(["port", "squeezenet1_1", "--to", "torch", "--set", "input_size=48", "-o", str(out)]) == 1
    assert os.listdir(out) == ["port-report.md"]
    assert "FAILED" in (out / "port-report.md").read_text()


def test_port_refuses_a_bad_input_in_one_line(tmp_path, capsys):
    bad = tmp_path / "x.npy"
    import numpy as np
    np.save(bad, np.zeros((1, 1, 5, 5), np.float32))
    assert main(["port", "squeezenet1_1", "--to", "torch", "--input", str(bad), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit the model's input" in err[0]


PAPER_NET = '''
import torch
from torch import nn


class PaperNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))


def build():
    torch.manual_seed(0)
    net = PaperNet()
    with torch.no_grad():
        net.stem[1].running_mean.uniform_(-0.1, 0.1)
        net.stem[1].running_var.uniform_(0.5, 1.5)
    return net.eval()
'''


@pytest.mark.slow
def test_port_from_a_captured_module(tmp_path):
    require("torch", "paddle")
    src = tmp_path / "paper_net.py"
    src.write_text(PAPER_NET)
    out = tmp_path / "port"
    assert main(["port", f"{src}:build", "--input-shape", "3,16,16", "--to", "paddle", "-o", str(out)]) == 0
    report = json.loads((out / "port.json").read_text())
    assert report["ok"] and report["rows"][-1]["against"].startswith("the original module")
    assert "class PaperNet(nn.Layer)" in (out / "model.py").read_text()


PADDLE_NET = '''
import paddle
from paddle import nn


class Tiny(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2D(8)
        self.act = nn.Hardswish()
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(paddle.flatten(self.pool(self.act(self.bn(self.conv(x)))), 1))


def build():
    paddle.seed(0)
    return Tiny()
'''


@pytest.mark.slow
def test_port_from_a_captured_paddle_layer_to_torch(tmp_path):
    """A Paddle model's own code ported to torch: the generated file is compared with onespec's
    paddle build (the source's framework) and with the layer itself."""
    require("torch", "paddle")
    src = tmp_path / "paddle_net.py"
    src.write_text(PADDLE_NET)
    out = tmp_path / "port"
    assert main(["port", f"{src}:build", "--input-shape", "3,16,16", "--to", "torch", "-o", str(out)]) == 0
    rows = json.loads((out / "port.json").read_text())["rows"]
    assert [r["against"] for r in rows[2:]] == ["onespec's paddle build (the source's framework)",
                                                 f"the original module ({src}:build)"]
    assert all(r["ok"] for r in rows)
