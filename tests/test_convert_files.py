"""``onespec convert``'s output files: complete under any name, and nothing left behind (no
child process, no partial weights) when the command is killed mid-write."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import onespec
from onespec.weights import init_state, load_state, save_state

from commands import alive, children_of, cli, sq_state, wait_until
from conftest import require


@pytest.mark.parametrize("name", ["model.bin", "MODEL.CKPT", "x.weights"])
def test_mindspore_save_to_any_name_writes_a_complete_file(tmp_path, name):
    require("mindspore")
    spec, src = sq_state(tmp_path)
    dst = tmp_path / name
    dst.write_bytes(b"old")
    proc = cli("convert", src, "--arch", "squeezenet1_1", "--set", "num_classes=10", "--to", "mindspore",
               "-o", str(dst))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert dst.stat().st_size > 1_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["sq.npz", name])  # no stray .ckpt
    mask = os.umask(0)
    os.umask(mask)
    assert dst.stat().st_mode & 0o777 == 0o666 & ~mask  # not MindSpore's read-only 0400
    back = cli("convert", str(dst), "--from", "mindspore", "--arch", "squeezenet1_1", "--set", "num_classes=10",
               "--to", "canonical", "-o", str(tmp_path / "back.npz"))
    assert back.returncode == 0, back.stderr[-2000:]
    a, b = load_state(src), load_state(str(tmp_path / "back.npz"))
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killing_convert_leaves_no_child_and_no_weights(tmp_path, sig):
    require("mindspore")
    spec = onespec.get_spec("vgg11")
    src = str(tmp_path / "vgg.npz")
    save_state(init_state(spec, 0), src)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "onespec", "convert", src, "--arch", "vgg11", "--to", "mindspore",
                             "-o", str(tmp_path / "out.ckpt")], env={**os.environ, "TMPDIR": str(tmpdir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    children = children_of(proc.pid)  # the write child at work
    assert children, "convert started no child"
    time.sleep(3)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    wait_until(lambda: not alive(children))
    assert not alive(children), f"orphaned children {alive(children)}"
    assert not list(tmpdir.iterdir())
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".onespec-")]
    assert not leftovers
    if sig == signal.SIGTERM:
        assert "Traceback" not in proc.stderr.read().decode()


@pytest.mark.parametrize("to,name,ext", [("paddle", "w.pth", ".pdparams"), ("canonical", "w.ckpt", ".npz"),
                                         ("torch", "w.npz", ".pth")])
def test_an_output_named_for_another_format_is_refused(tmp_path, to, name, ext):
    """A Paddle file named .pth would be read back as torch's: refused before anything runs."""
    from onespec.convert import convert

    src = tmp_path / "w.npz"
    src.write_bytes(b"x")
    with pytest.raises(onespec.OnespecError, match=f"cannot write {to} to .*{name}: its extension is .*; "
                                                    f"name the output \\*{ext}"):
        convert(str(src), "squeezenet1_1", to, str(tmp_path / name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.npz"]
