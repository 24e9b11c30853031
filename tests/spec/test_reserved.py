"""The reserved node names cover every attribute of the installed frameworks' module base classes, and
the private ones every private attribute of those and of onespec's emitted modules."""
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
print("\n".join(sorted(n for n in names if re.fullmatch(r"_?[A-Za-z0-9][A-Za-z0-9_]*", n))))
"""


def test_reserved_and_private_names_cover_the_frameworks_and_onespec_backends():
    """Public attributes of the frameworks' module base classes are reserved; a node named
    ``_blocks`` is accepted, one named like a private attribute of a base class or of one of
    onespec's emitted modules (``_merge``) is refused."""
    import pathlib

    from onespec.spec.reserved import PRIVATE_NAMES

    require("torch", "paddle", "mindspore")
    proc = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set(proc.stdout.split())
    public = {n for n in names if not n.startswith("_")}
    missing = public - RESERVED_NAMES
    assert not missing, f"framework attributes a node name could shadow: {sorted(missing)}"
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n) for n in RESERVED_NAMES)
    backends = pathlib.Path(__file__).parents[2] / "onespec" / "backends"
    own = {m for f in backends.glob("*/emit.py") for m in re.findall(r"self\.(_[A-Za-z0-9_]+) *=", f.read_text())}
    missing = (names - public | own) - PRIVATE_NAMES
    assert not missing, f"private attributes a node name could shadow: {sorted(missing)}"
