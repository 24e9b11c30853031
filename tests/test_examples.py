"""The examples run as documented (the MindSpore one in make slow)."""
import os
import re
import subprocess
import sys

import pytest

from conftest import require

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(*args):
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_custom_spec_example():
    require("torch", "paddle", "mindspore")
    out = run_example("examples/custom_spec.py")
    assert "tiny_resnet: 10,138 params" in out
    errs = [float(e) for e in re.findall(r"max rel err vs numpy ([0-9.e+-]+)", out)]
    assert len(errs) == 3 and max(errs) < 1e-4


@pytest.mark.slow
def test_torchvision_to_mindspore_example():
    require("torch", "torchvision", "paddle", "mindspore")
    out = run_example("examples/torchvision_to_mindspore.py", "squeezenet1_1")
    errs = [float(e) for e in re.findall(r"max rel err vs torchvision ([0-9.e+-]+)", out)]
    assert len(errs) == 2 and max(errs) < 1e-4, out
