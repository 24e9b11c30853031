"""onespec's own state files (.npz) from hostile hands: every reader checks sizes before
allocating."""
import zipfile

import numpy as np
import pytest

import onespec
from onespec.weights import StateError, load_state

from commands import cli


def test_npz_bomb_is_refused_before_decompressing(tmp_path):
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("features.conv1.weight.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)})
            chunk = bytes(1 << 24)
            for _ in range(64):  # 1 GiB of zeros, ~1 MB compressed
                f.write(chunk)
    assert bomb.stat().st_size < 8 << 20
    spec = onespec.get_spec("squeezenet1_1")
    import resource
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(StateError, match="wrong shape|missing"):
        load_state(str(bomb), spec)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing near 1 GiB
    proc = cli("convert", str(bomb), "--arch", "squeezenet1_1", "--to", "canonical", "-o", str(tmp_path / "o.npz"))
    assert proc.returncode == 2 and "wrong shape" in proc.stderr


def test_npz_whose_header_lies_about_its_size_is_refused(tmp_path):
    liar = tmp_path / "liar.npz"
    with zipfile.ZipFile(liar, "w") as zf:
        with zf.open("a.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10,)})
            f.write(bytes(8))
    with pytest.raises(StateError, match="declares"):
        load_state(str(liar))
