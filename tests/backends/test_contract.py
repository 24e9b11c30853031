"""Every backend implements the one declared contract (``onespec.backends.Backend``), and the
numpy backend behaves as a backend: counts, names, state round trip, checkpoints."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import onespec
from onespec.backends import BACKENDS, CAPTURE_CONTRACT, Backend, framework
from onespec.backends import numpy as npb

from conftest import require

CONTRACT = sorted(n for n in vars(Backend) if not n.startswith("_") and n not in CAPTURE_CONTRACT)


def test_contract_is_declared():
    assert {"build", "count", "forward", "static_forward", "param_names", "train_step", "native_names",
            "load_state", "get_state", "save", "read", "load", "node_io", "run_node", "node_vjp",
            "foreign_state", "session", "dist_start", "dist_end", "apply_numerics", "numerics_environment",
            "bench_harness"} == set(CONTRACT)
    assert set(CAPTURE_CONTRACT) <= set(vars(Backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_implements_the_contract(backend):
    if backend != "numpy":
        require(backend)
    names = CONTRACT + list(CAPTURE_CONTRACT if framework(backend).model_bases else ())
    code = (f"import inspect, onespec.backends.{backend} as b; "
            f"missing = [n for n in {names!r} if not callable(getattr(b, n, None))]; "
            f"print(missing if b.FRAMEWORK.name == {backend!r} else 'FRAMEWORK')")
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


TOY = os.path.join(os.path.dirname(__file__), "toybackend")


def _onespec(*args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "onespec", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, **kw)


def test_a_registered_backend_takes_every_command(tmp_path):
    """A backend outside onespec (tests/backends/toybackend: the numpy evaluator as ``toy``, with
    ``.toy`` checkpoints), registered by ONESPEC_BACKENDS alone, is a choice of the commands and
    runs show, convert to and from its files, conformance and diff, its children included."""
    env = {"ONESPEC_BACKENDS": f"toy={TOY}"}
    spec = onespec.get_spec("squeezenet1_1", input_size=32)
    state = onespec.init_state(spec, 1)
    onespec.weights.save_state(state, str(tmp_path / "a.npz"))
    shown = _onespec("show", "squeezenet1_1", "--set", "input_size=32", env=env)
    assert shown.returncode == 0 and "total:" in shown.stdout, shown.stderr
    arch = ["--arch", "squeezenet1_1", "--set", "input_size=32"]
    to_toy = _onespec("convert", str(tmp_path / "a.npz"), *arch, "--to", "toy", "-o", str(tmp_path / "b.toy"), env=env)
    assert to_toy.returncode == 0, to_toy.stderr
    back = _onespec("convert", str(tmp_path / "b.toy"), *arch, "--to", "canonical", "-o", str(tmp_path / "c.npz"),
                    env=env)
    assert back.returncode == 0 and "(onespec)" in back.stdout, back.stderr
    again = onespec.weights.load_state(str(tmp_path / "c.npz"))
    assert set(again) == set(state) and all(np.array_equal(again[k], state[k]) for k in state)
    conf = _onespec("conformance", "squeezenet1_1", "--backends", "toy", "--small", "--json", str(tmp_path / "c.json"),
                    env=env)
    assert conf.returncode == 0 and "CONFORMANCE PASSED" in conf.stdout, conf.stdout + conf.stderr
    import json
    with open(tmp_path / "c.json") as f:
        results = json.load(f)["results"]
    assert [(r["backend"], r["status"]) for r in results] == [("toy", "pass")]
    diff = _onespec("diff", "squeezenet1_1", "--backend", "toy", "--set", "input_size=32", "--weights",
                    str(tmp_path / "b.toy"), "--out", str(tmp_path / "diff"), env=env)
    assert diff.returncode == 0 and (tmp_path / "diff" / "diff.json").exists(), diff.stdout + diff.stderr
    # unregistered, it is no backend at all
    assert "invalid choice: 'toy'" in _onespec("diff", "squeezenet1_1", "--backend", "toy").stderr


def test_registry_describes_backends_without_importing_them():
    code = ("import sys; from onespec import backends as b; "
            "print(b.frameworks(), b.by_extension('m.PDPARAMS'), b.by_extension('x.toy'), "
            "b.framework('paddle').transposed, [m for m in ('torch', 'paddle', 'mindspore') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "ONESPEC_BACKENDS": f"toy={TOY}"})
    assert out.stdout.split("\n")[0] == ("('torch', 'paddle', 'mindspore', 'toy') paddle toy "
                                         "frozenset({'linear'}) []"), out.stderr
    with pytest.raises(onespec.OnespecError, match="unknown backend 'nope'"):
        from onespec.backends import framework
        framework("nope")


# what a framework's own logs look like on stderr: glog lines (I1207 10:45:57.46 ... file.cc:12]),
# MindSpore's ([WARNING] ME(...)), Python warnings (file.py:712: UserWarning: / warnings.warn(...))
FRAMEWORK_LOG = re.compile(r"^([IWEF]\d{4} \d\d:\d\d|\[(WARNING|INFO|ERROR)\] |.*\.py:\d+: \w*Warning: |\s*warnings\.warn\()",
                           re.M)


def test_paddle_is_quiet_unless_verbose(tmp_path):
    """Paddle's import-time ccache warning and its glog lines (the pir interpreter's INFO lines of
    a compiled run) stay off the terminal: from a command, and from ``onespec.build`` in the
    user's own process; ONESPEC_VERBOSE=1 shows them."""
    require("paddle")
    env = {"ONESPEC_NO_MINDSPORE_PRELOAD": "1"}  # mindspore's import is not what is tested
    diff = _onespec("diff", "squeezenet1_1", "--backend", "paddle", "--set", "input_size=32", "--out",
                    str(tmp_path / "d"), env=env)
    assert diff.returncode == 0 and not FRAMEWORK_LOG.search(diff.stderr), diff.stderr[-2000:]
    code = ("import numpy as np, onespec; from onespec.backends import load_backend\n"
            "net = onespec.build('squeezenet1_1', backend='paddle', input_size=32)\n"
            "load_backend('paddle').static_forward(net, np.zeros((1, 3, 32, 32), np.float32))")
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert quiet.returncode == 0 and not FRAMEWORK_LOG.search(quiet.stderr), quiet.stderr[-2000:]
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env, "ONESPEC_VERBOSE": "1"})
    assert loud.returncode == 0 and FRAMEWORK_LOG.search(loud.stderr), loud.stderr[-2000:]
