"""Shared by the codegen tests: zoo specs at small inputs and the check of one generated file."""
import numpy as np

import onespec
from onespec.codegen.verify import TOLERANCE, check
from onespec.errors import OverrideError



def small_spec(name: str):
    """``name`` at a 64x64 input where its builder takes an input size, else at its own."""
    try:
        return onespec.get_spec(name, input_size=64)
    except OverrideError:
        return onespec.get_spec(name)


def assert_generated_equal(name: str, backend: str, tmp_path) -> dict:
    spec = small_spec(name)
    x = np.random.default_rng(1).standard_normal((2, *spec.input_shape)).astype(np.float32)
    r = check(spec, backend, str(tmp_path), onespec.init_state(spec, seed=3), x)
    assert r["eager"] <= TOLERANCE, (name, backend, r)
    assert r["compiled"] <= TOLERANCE, (name, backend, r)
    assert r["ok"]
    return r
