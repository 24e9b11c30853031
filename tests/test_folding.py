"""onespec.fold (onespec/folding.py): BN folded into the preceding conv/linear, dropout and identities removed; the
folded network computes the eval-mode network. Whole zoo in float64 here; in every framework
(float32 folded vs unfolded, 1e-5 relative) for the models holding every op configuration of the
zoo, the whole zoo in ``make slow``."""
import json
import subprocess
import sys

import numpy as np
import pytest

import onespec
from onespec.backends import numpy as npb
from onespec.conformance.numerics import distinct, small_overrides
from onespec.folding import FoldError, fold

from conftest import require

MODELS = onespec.list_models()


def _specs():
    return {n: onespec.get_spec(n, **small_overrides(n)) for n in MODELS}


def _state(spec, seed=0):
    """init_state with BN statistics spread like a trained network's (var 0.5-2, mean +-0.5)."""
    st = onespec.init_state(spec, seed)
    rng = np.random.default_rng(seed)
    for k, v in st.items():
        if k.endswith("running_var"):
            st[k] = rng.uniform(0.5, 2.0, v.shape).astype(np.float32)
        elif k.endswith("running_mean"):
            st[k] = rng.uniform(-0.5, 0.5, v.shape).astype(np.float32)
    return st


def _small(name):
    """Small inputs: a fold does not depend on the pools' cases (VGG at 64 px, not 224)."""
    from onespec.zoo import entry
    ov = small_overrides(name)
    if "input_size" in entry(name).accepted() and onespec.get_spec(name, **ov).input_shape[-1] > 64:
        ov["input_size"] = 64
    return onespec.get_spec(name, **ov)


@pytest.mark.parametrize("name", MODELS)
def test_fold_is_exact_in_float64(name):
    spec = _small(name)
    st = _state(spec)
    f, fs = fold(spec, st, dtype=np.float64)
    a, b = onespec.analyze(spec), onespec.analyze(f)
    assert not any(r.op in ("dropout",) for r in b.rows)
    bns = [r for r in a.rows if r.op == "batchnorm"]
    assert b.state == a.state - sum(r.state for r in bns if r.path not in {x.path for x in b.rows})
    assert b.output_shape == a.output_shape and f.meta.options["folded"] is True
    x = np.random.default_rng(1).standard_normal((1, *spec.input_shape))
    y, yf = npb.evaluate(spec, st, x), npb.evaluate(f, fs, x)
    assert np.abs(yf - y).max() <= 1e-10 * np.abs(y).max()


def test_what_is_folded_and_what_stays():
    spec = onespec.get_spec("resnet18")
    f, fs = fold(spec, _state(spec))
    ops = {r.path: r.op for r in onespec.analyze(f).rows}
    assert "stem.bn" not in ops and ops["stem.conv"] == "conv"
    assert "stem.conv.bias" in fs                  # a conv without bias gains one
    assert [p for p, o in ops.items() if o == "batchnorm"] == []
    assert onespec.analyze(f).state == 0
    sq = onespec.get_spec("squeezenet1_1")
    g, _ = fold(sq, onespec.init_state(sq, 0))
    assert "classifier.dropout" not in {r.path for r in onespec.analyze(g).rows}
    with pytest.raises(FoldError, match="folded already"):
        fold(g, _)
    with pytest.raises(onespec.OnespecError, match="missing"):
        fold(spec, {k: v for k, v in fs.items() if "stem" not in k})


CHECK = r"""
import json, sys, numpy as np, onespec
from onespec.backends import load_backend
from onespec.folding import fold
from onespec.conformance.numerics import small_overrides
from onespec.backends import numpy as npb
sys.path.insert(0, {tests!r})
from test_folding import _state
b = load_backend({backend!r})
out = {{}}
for name in {models!r}:
    spec = onespec.get_spec(name, **small_overrides(name))
    st = _state(spec)
    f, fs = fold(spec, st)
    x = np.random.default_rng(1).standard_normal((2, *spec.input_shape)).astype(np.float32)
    n, m = b.build(spec), b.build(f)
    b.load_state(n, spec, st); b.load_state(m, f, fs)
    y, yf = b.forward(n, x)[0], b.forward(m, x)[0]
    y64 = npb.evaluate(spec, st, x.astype(np.float64))
    scale = float(np.abs(y64).max())
    # (folded vs unfolded, unfolded float32 vs the float64 reference: float32's own error)
    out[name] = (float(np.abs(yf - y).max()) / scale, float(np.abs(y - y64).max()) / scale)
print(json.dumps(out))
"""


def _check(backend, models):
    require(backend)
    import os
    tests = os.path.dirname(__file__)
    r = subprocess.run([sys.executable, "-c", CHECK.format(backend=backend, models=models, tests=tests)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    errs = json.loads(r.stdout.strip().splitlines()[-1])
    # 1e-5, or twice what float32 alone does to the unfolded network (MicroNet's shift-max chains:
    # 2e-5 unfolded vs float64, as conformance reports)
    assert all(e <= max(1e-5, 2 * noise) for e, noise in errs.values()), errs


@pytest.mark.frameworks
@pytest.mark.parametrize("backend", ["torch"] + [pytest.param(b, marks=pytest.mark.slow) for b in ("paddle", "mindspore")])
def test_folded_equals_eval_network_in_every_framework(backend):
    _check(backend, distinct(_specs()))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_folded_whole_zoo_in_every_framework(backend):
    _check(backend, MODELS)
