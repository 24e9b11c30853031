"""The reserved node names cover every attribute of the installed frameworks' module base classes."""
import re
import subprocess
import sys

from onespec.spec.reserved import RESERVED_NAMES

from conftest import require

CODE = r"""
import re, mindspore, paddle, torch
names = set()
for base in (torch.nn.Module, paddle.nn.Layer, mindspore.nn.Cell):
    names |= set(dir(base)) | set(vars(base()))
print("\n".join(sorted(n for n in names if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n))))
"""


def test_reserved_names_cover_the_installed_frameworks():
    require("torch", "paddle", "mindspore")
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    missing = set(proc.stdout.split()) - RESERVED_NAMES
    assert not missing, f"framework attributes a node name could shadow: {sorted(missing)}"
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n) for n in RESERVED_NAMES)
