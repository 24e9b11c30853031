"""The ``onespec`` command and the public functions facing users: a user's mistake is one
``onespec: error:`` line and exit status 2 (an ``OnespecError`` in Python), ``--set`` values
parse as users write them, and the command imports nothing from the working directory."""
import os
import subprocess
import sys

import pytest

import onespec

from commands import cli, sq_state
from conftest import require


@pytest.mark.parametrize("override", ["width=Infinity", "input_size=null", "num_classes=true", "groups=[1]",
                                      "width=-1", "nonsense", "dropout=2"])
def test_bad_overrides_are_one_cli_line(override):
    model = "shufflenet_v1" if override.startswith("groups") else "mobilenet_v2"
    proc = cli("show", model, "--set", override)
    assert proc.returncode == 2, (proc.stdout[-500:], proc.stderr)
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("onespec: error:")
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_set_values_are_json_or_python_booleans_or_text():
    """What convert prints (``--set ceil_mode=false``) and Python's spelling both parse."""
    from onespec.cli.common import key_values
    assert key_values(["ceil_mode=false", "fc_bias=False", "megvii=True", "width=0.25", "pool_padding=same",
                       "size=[1, 2]"]) == {"ceil_mode": False, "fc_bias": False, "megvii": True, "width": 0.25,
                                           "pool_padding": "same", "size": (1, 2)}


@pytest.mark.parametrize("args", [
    ("convert", "missing.npz", "--arch", "squeezenet1_1", "--to", "torch", "-o", "x.pth"),
    ("convert", "x.npz", "--arch", "nope", "--to", "torch", "-o", "x.pth"),
    ("convert", "x.npz", "--arch", "squeezenet1_1", "--to", "torch", "-o", "/no/such/dir/x.pth"),
    ("conformance", "nomatch*"),
    ("show", "nope"),
])
def test_cli_user_errors_exit_2_with_one_line(tmp_path, args):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_public_functions_raise_onespec_errors():
    with pytest.raises(onespec.OnespecError):
        onespec.build(42)
    with pytest.raises(onespec.OnespecError):
        onespec.build("squeezenet1_1", backend="tensorflow")
    with pytest.raises(onespec.OnespecError):
        onespec.get_spec("mobilenet_v2", width=float("inf"))
    with pytest.raises(onespec.OnespecError):
        onespec.get_spec("shufflenet_v1", groups=[1])


def test_numpy_py_in_the_working_directory_is_not_imported(tmp_path):
    require("torch")
    sq_state(tmp_path)
    (tmp_path / "numpy.py").write_text("open('HIJACKED', 'w').write('x')\nraise SystemExit(3)\n")
    # the `onespec` console script, as users run it (`python -m` would put the cwd first by Python's rule)
    script = os.path.join(os.path.dirname(sys.executable), "onespec")
    proc = subprocess.run([script, "convert", "sq.npz", "--arch", "squeezenet1_1", "--set", "num_classes=10",
                           "--to", "torch", "-o", "sq.pth"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (tmp_path / "HIJACKED").exists()
    proc = subprocess.run([script, "conformance", "squeezenet1_1", "--backends", "torch", "--no-static"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (tmp_path / "HIJACKED").exists()
