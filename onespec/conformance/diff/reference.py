"""The float64 reference for train mode and backward: the backend contract's optional
``reference`` module (``backends/<fw>/reference.py``: a float64 autograd build of the spec and
its float32 twin), from the first framework in ``FRAMEWORKS`` that ships one, checked against
the numpy evaluator before it judges anything."""
from __future__ import annotations

import importlib
import os

import numpy as np

from ...backends import FRAMEWORKS, load_backend
from ...spec import trace
from .common import DiffError, rel


def reference_framework() -> str:
    """The framework whose backend package ships the autograd reference (found without importing
    any framework: ``diff`` imports at most the one it judges and this one)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    for fw in FRAMEWORKS:
        if os.path.exists(os.path.join(here, "backends", fw, "reference.py")):
            return fw
    raise DiffError("no backend provides a float64 autograd reference (backends/<framework>/reference.py)")


def float64_reference(spec, state, x):
    """The float64 reference, refused unless its eval forward equals the numpy evaluator's at
    every node (1e-9): a convention error in its emitter would otherwise be inherited."""
    fw = reference_framework()
    load_backend(fw)  # the framework's import order and numerics switches
    ref = importlib.import_module(f"onespec.backends.{fw}.reference").Reference(spec, state)
    np_be = load_backend("numpy")
    nref = np_be.build(spec)
    np_be.load_state(nref, spec, state)
    want, got = np_be.node_io(nref, x), ref.node_io(x, train=False)
    for info in trace(spec):
        if info.path in want and rel(got.get(info.path, (None, np.zeros(0)))[1], want[info.path][1]) > 1e-9:
            raise DiffError(f"the train-mode/backward reference ({fw}, float64) differs from the numpy evaluator at "
                            f"{info.path} in eval mode: run `onespec diff {spec.name} --backend {fw}` first")
    return ref
