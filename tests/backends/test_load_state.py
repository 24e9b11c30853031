"""Every backend's ``load_state`` checks the whole state before changing any tensor: a refused
state leaves the network as it was."""
import subprocess
import sys

import pytest

from onespec import FRAMEWORKS

from conftest import require


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_load_state_checks_everything_before_changing_anything(backend):
    require(backend)
    code = f"""
import numpy as np, onespec
from onespec.backends import load_backend
from onespec.weights import init_state, StateError
b = load_backend("{backend}")
spec10, spec1000 = onespec.get_spec("squeezenet1_1", num_classes=10), onespec.get_spec("squeezenet1_1")
net = b.build(spec10)
b.load_state(net, spec10, init_state(spec10, 1))
before = b.get_state(net, spec10)
try:
    b.load_state(net, spec1000, init_state(spec1000, 2))   # a state for another head
    raise SystemExit("accepted")
except StateError as e:
    assert "wrong shape" in str(e), e
after = b.get_state(net, spec10)
changed = [k for k in before if not np.array_equal(before[k], after[k])]
assert not changed, changed
print("OK")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
