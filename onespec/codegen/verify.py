"""Proof that a generated file computes what onespec's build computes.

Two child interpreters (``python -I``, one framework each): onespec's side builds the spec,
loads the canonical state, writes the framework's native checkpoint (``save``) and its output on
the input; the generated side runs with ``import onespec`` refused by an import hook, loads that
checkpoint with the framework's own strict loader, and writes its eager output and the output of
the framework's compiled graph (``torch.export``, ``paddle.jit.to_static``, MindSpore
GRAPH_MODE). Relative error: the largest absolute difference over the largest absolute value of
onespec's output. The compiled output is compared with the build's eager output, or where that
differs by more than the tolerance with the build's own compiled output (a third child): Paddle's
eager build normalizes in place with a kernel of its own that its compiled program does not use.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap

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
import importlib.util, json, os
import numpy as np


def save(path, y, to_numpy):
    """The network's output, or its several outputs in order, as arr_0, arr_1, ... of an .npz."""
    np.savez(path, *[to_numpy(t) for t in (y if isinstance(y, (tuple, list)) else (y,))])


def load(model, i):
    """model.py as a module of its own, registered by name as an import registers it (MindSpore's
    GRAPH_MODE reads the forward's globals from the module by name)."""
    spec = importlib.util.spec_from_file_location(f"model_{i}", model)
    mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(mod, WEIGHTS, X, OUT):
'''

_LOOP = '''

for i, (MODEL, WEIGHTS, X, OUT) in enumerate(json.load(open(sys.argv[1]))):
    run(load(MODEL, i), WEIGHTS, X, OUT)
'''

_ONESPEC = '''import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from onespec.backends import load_backend
from onespec.spec.model import parse_spec
be = load_backend(sys.argv[2])
for spec_path, state, weights, x, ref in json.load(open(sys.argv[3])):
    spec = parse_spec(open(spec_path).read())
    net = be.build(spec)
    be.load_state(net, spec, dict(np.load(state)))
    be.save(net, weights)
    y = be.forward(net, np.load(x))[0]
    np.savez(ref, *(y if isinstance(y, tuple) else (y,)))
'''

_ONESPEC_COMPILED = '''import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from onespec.backends import load_backend
from onespec.spec.model import parse_spec
be = load_backend(sys.argv[2])
for spec_path, state, x, out in json.load(open(sys.argv[3])):
    spec = parse_spec(open(spec_path).read())
    net = be.build(spec)
    be.load_state(net, spec, dict(np.load(state)))
    y = be.static_forward(net, np.load(x))
    np.savez(out, *(y if isinstance(y, tuple) else (y,)))
'''


def generated_script(ops) -> str:
    """The generated side's program: the backend's ``RUN`` (strict load, eager and compiled
    outputs) for each case of the JSON list ``argv[1]``."""
    return _BLOCK + textwrap.indent(ops.RUN, "    ") + _LOOP


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
    return check_all([(spec, state, x, source)], backend, [workdir])[0]


def check_all(cases: list, backend: str, workdirs: list[str]) -> list[dict]:
    """``check`` of several ``(spec, state, x, source)`` cases, one working directory each, in
    one pair of child interpreters (a framework's import is most of a small model's check)."""
    ops = backend_ops(backend)
    names = (("model", "model.py"), ("spec", "spec.json"), ("state", "state.npz"), ("x", "x.npy"),
             ("weights", f"weights.{ops.WEIGHTS_EXT}"), ("ref", "reference.npz"), ("out", "generated"))
    all_paths = []
    for (spec, state, x, source), workdir in zip(cases, workdirs):
        paths = {k: os.path.join(workdir, v) for k, v in names}
        with open(paths["model"], "w") as f:
            f.write(codegen(spec, backend) if source is None else source)
        with open(paths["spec"], "w") as f:
            f.write(spec.model_dump_json())
        np.savez(paths["state"], **state)
        np.save(paths["x"], np.ascontiguousarray(x, dtype=np.float32))
        all_paths.append(paths)
    manifest = os.path.join(workdirs[0], "cases.json")
    with open(manifest, "w") as f:
        json.dump([[p[k] for k in ("spec", "state", "weights", "x", "ref")] for p in all_paths], f)
    _run(["-c", _ONESPEC, _ROOT, backend, manifest], f"onespec's {backend} build")
    with open(manifest, "w") as f:
        json.dump([[p[k] for k in ("model", "weights", "x", "out")] for p in all_paths], f)
    _run(["-c", generated_script(ops), manifest], f"the generated {backend} file")
    rows = [_errors(p, backend) for p in all_paths]
    # a build whose eager forward uses kernels of its own (Paddle's in-place BatchNorm) may round
    # otherwise than its compiled program: the compiled output is then held to the build's
    compiled = [p for p, r in zip(all_paths, rows) if r["compiled"] > TOLERANCE]
    if compiled:
        with open(manifest, "w") as f:
            json.dump([[p[k] for k in ("spec", "state", "x")] + [p["ref"] + ".compiled.npz"] for p in compiled], f)
        _run(["-c", _ONESPEC_COMPILED, _ROOT, backend, manifest], f"onespec's compiled {backend} build")
        for p, r in zip(all_paths, rows):
            if any(p is c for c in compiled):
                ref = load_outputs(p["ref"] + ".compiled.npz")
                r["compiled"] = rel_err(load_outputs(p["out"] + ".compiled.npz"), ref)
                r["compiled_against"] = f"onespec's compiled {backend} build"
                os.remove(p["ref"] + ".compiled.npz")
    os.remove(manifest)
    return [_finish(p, r) for p, r in zip(all_paths, rows)]


def _errors(paths: dict, backend: str) -> dict:
    ref = load_outputs(paths["ref"])
    with open(paths["out"] + ".json") as f:
        facts = json.load(f)
    return {"eager": rel_err(load_outputs(paths["out"] + ".eager.npz"), ref),
            "compiled": rel_err(load_outputs(paths["out"] + ".compiled.npz"), ref),
            "compiled_against": f"onespec's {backend} build", **facts}


def _finish(paths: dict, r: dict) -> dict:
    for p in ("spec", "state", "x", "ref"):
        os.remove(paths[p])
    for p in (".compiled.npz", ".json"):
        os.remove(paths["out"] + p)
    return {**r, "ok": max(r["eager"], r["compiled"]) <= TOLERANCE, "weights": paths["weights"],
            "model": paths["model"], "eager_output": paths["out"] + ".eager.npz",
            "python": sys.version.split()[0]}
