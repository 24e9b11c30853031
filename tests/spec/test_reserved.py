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


PRIVATE_CODE = CODE.replace(r'r"[A-Za-z][A-Za-z0-9_]*"', r'r"_[A-Za-z0-9][A-Za-z0-9_]*"')


def test_private_names_cover_the_frameworks_and_onespec_backends():
    """A node named ``_blocks`` is accepted; one named like a private attribute of a framework's
    module base class or of one of onespec's emitted modules is refused."""
    import pathlib

    from onespec.spec.reserved import PRIVATE_NAMES

    require("torch", "paddle", "mindspore")
    proc = subprocess.run([sys.executable, "-c", PRIVATE_CODE], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    backends = pathlib.Path(__file__).parents[2] / "onespec" / "backends"
    own = {m for f in backends.glob("*/emit.py") for m in re.findall(r"self\.(_[A-Za-z0-9_]+) *=", f.read_text())}
    missing = (set(proc.stdout.split()) | own) - PRIVATE_NAMES
    assert not missing, f"private attributes a node name could shadow: {sorted(missing)}"
