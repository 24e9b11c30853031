"""Proof that a generated file computes what onespec's build computes.

Two child interpreters (``python -I``, one framework each): onespec's side builds the spec,
loads the canonical state, writes the framework's native checkpoint (``save``) and its output on
the input; the generated side runs with ``import onespec`` refused by an import hook, loads that
checkpoint with the framework's own strict loader, and writes its eager output and the output of
the framework's compiled graph (``torch.export``, ``paddle.jit.to_static``, MindSpore
GRAPH_MODE). Relative error: the largest absolute difference over the largest absolute value of
onespec's output.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from ..errors import OnespecError
from ..spec import ModelSpec
from . import backend_ops, codegen

TOLERANCE = 1e-5
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_BLOCK = '''import sys
class _NoOnespec:
    """The generated file must run where onespec is not installed."""
    def find_spec(self, name, path=None, target=None):
        if name == "onespec" or name.startswith("onespec."):
            raise ImportError("onespec may not be imported here")
sys.meta_path.insert(0, _NoOnespec())
import importlib, json, os
import numpy as np
MODEL, WEIGHTS, X, OUT = sys.argv[1:5]
# imported as a module of its own directory, as a user imports it (MindSpore's GRAPH_MODE reads
# the forward's globals from the module by name)
sys.path.insert(0, os.path.dirname(MODEL))
mod = importlib.import_module(os.path.basename(MODEL)[:-3])


def save(path, y, to_numpy):
    """The network's output, or its several outputs in order, as arr_0, arr_1, ... of an .npz."""
    np.savez(path, *[to_numpy(t) for t in (y if isinstance(y, (tuple, list)) else (y,))])
'''

_ONESPEC = '''import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from onespec.backends import load_backend
from onespec.spec.model import parse_spec
spec = parse_spec(open(sys.argv[3]).read())
be = load_backend(sys.argv[2])
net = be.build(spec)
be.load_state(net, spec, dict(np.load(sys.argv[4])))
be.save(net, sys.argv[5])
y = be.forward(net, np.load(sys.argv[6]))[0]
np.savez(sys.argv[7], *(y if isinstance(y, tuple) else (y,)))
'''


def _run(args: list[str], what: str) -> None:
    from .._proc import run_child
    code, out, err = run_child(args)
    if code != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-12:]
        raise OnespecError(f"{what} failed (exit {code}): " + " | ".join(tail))


def rel_err(a, ref) -> float:
    """Of one output, or the largest over several (tuples, in order)."""
    if isinstance(a, tuple) or isinstance(ref, tuple):
        if not (isinstance(a, tuple) and isinstance(ref, tuple)) or len(a) != len(ref):
            return float("inf")
        return max(rel_err(ai, ri) for ai, ri in zip(a, ref))
    if a.shape != ref.shape:
        return float("inf")
    ref = ref.astype(np.float64)
    return float(np.max(np.abs(a.astype(np.float64) - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def load_outputs(path: str):
    """What ``save`` wrote: one array, or a tuple of the several outputs."""
    with np.load(path) as f:
        outs = tuple(f[f"arr_{i}"] for i in range(len(f.files)))
    return outs[0] if len(outs) == 1 else outs


def check(spec: ModelSpec, backend: str, workdir: str, state: dict, x: np.ndarray,
          source: str | None = None) -> dict:
    """Generate (or take ``source``), run both sides, compare. Returns the rows of the report:
    ``{"eager": rel, "compiled": rel, "ok": bool, ...}`` and leaves ``model.py``, the native
    checkpoint and the generated file's eager output in ``workdir``."""
    ops = backend_ops(backend)
    source = codegen(spec, backend) if source is None else source
    paths = {k: os.path.join(workdir, v) for k, v in (
        ("model", "model.py"), ("spec", "spec.json"), ("state", "state.npz"), ("x", "x.npy"),
        ("weights", f"weights.{ops.WEIGHTS_EXT}"), ("ref", "reference.npz"), ("out", "generated"))}
    with open(paths["model"], "w") as f:
        f.write(source)
    with open(paths["spec"], "w") as f:
        f.write(spec.model_dump_json())
    np.savez(paths["state"], **state)
    np.save(paths["x"], np.ascontiguousarray(x, dtype=np.float32))
    _run(["-c", _ONESPEC, _ROOT, backend, paths["spec"], paths["state"], paths["weights"], paths["x"],
          paths["ref"]], f"onespec's {backend} build")
    _run(["-c", _BLOCK + ops.RUN, paths["model"], paths["weights"], paths["x"], paths["out"]],
         f"the generated {backend} file")
    ref = load_outputs(paths["ref"])
    with open(paths["out"] + ".json") as f:
        facts = json.load(f)
    rows = {"eager": rel_err(load_outputs(paths["out"] + ".eager.npz"), ref),
            "compiled": rel_err(load_outputs(paths["out"] + ".compiled.npz"), ref)}
    for p in ("spec", "state", "x", "ref"):
        os.remove(paths[p])
    for p in (".compiled.npz", ".json"):
        os.remove(paths["out"] + p)
    return {**rows, **facts, "ok": max(rows.values()) <= TOLERANCE, "weights": paths["weights"],
            "model": paths["model"], "eager_output": paths["out"] + ".eager.npz",
            "python": sys.version.split()[0]}
