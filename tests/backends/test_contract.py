"""Every backend implements the one declared contract (``onespec.backends.Backend``), and the
numpy backend behaves as a backend: counts, names, state round trip, checkpoints."""
import subprocess
import sys

import numpy as np
import pytest

import onespec
from onespec.backends import BACKENDS, Backend
from onespec.backends import numpy as npb

from conftest import require

CONTRACT = sorted(n for n in vars(Backend) if not n.startswith("_"))


def test_contract_is_declared():
    assert {"build", "count", "forward", "static_forward", "param_names", "train_step", "native_names",
            "load_state", "get_state", "save", "read", "load", "node_io", "run_node", "node_vjp"} == set(CONTRACT)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_implements_the_contract(backend):
    if backend != "numpy":
        require(backend)
    code = (f"import inspect, onespec.backends.{backend} as b; "
            f"missing = [n for n in {CONTRACT!r} if not callable(getattr(b, n, None))]; print(missing)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr[-2000:]


def test_numpy_backend_round_trip_and_checkpoint(tmp_path):
    spec = onespec.get_spec("mobilenet_v3_small", input_size=64)
    net = npb.build(spec)
    a = onespec.analyze(spec)
    assert npb.count(net) == (a.params, a.state)
    assert npb.param_names(net) == list(npb.native_names(spec).values())
    state = onespec.init_state(spec, 3)
    npb.load_state(net, spec, state)
    back = npb.get_state(net, spec)
    assert all(np.array_equal(back[k], state[k]) and back[k].dtype == state[k].dtype for k in state)
    npb.save(net, str(tmp_path / "m.npz"))
    other = npb.build(spec)
    npb.load(other, str(tmp_path / "m.npz"))
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64))
    np.testing.assert_array_equal(npb.forward(net, x)[0], npb.forward(other, x)[0])
    with pytest.raises(onespec.OnespecError, match="no autograd"):
        npb.train_step(net, x, x, 0.1)
