"""One framework, one process: build each model, count, run a seeded eval batch with every
intermediate shape recorded, run the compiled program, and compare all of it with the spec.

Run as ``python -m onespec.conformance.worker --backend B --models a,b --out result.json``;
the runner starts one of these per framework so that frameworks never share a process.
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import time
import traceback
import urllib.parse

import numpy as np

from ..backends import load_backend
from ..spec import analyze
from ..weights import load_state, save_state
from .._proc import child_init
from ..spec import ModelSpec
from .numerics import NUMERIC_RTOL, TRAIN_LR, rel_err, train_inputs, without_dropout

# identical kernels in eager and compiled runs still fuse differently; relative to output scale
STATIC_RTOL = 1e-4


def stem(name: str) -> str:
    """A model's name as a file name in the work folders: a spec file's path holds separators,
    and a long one is cut and told apart by its hash."""
    safe = urllib.parse.quote(name, safe="")
    return safe if len(safe) <= 120 else f"{safe[:100]}-{hashlib.sha1(name.encode()).hexdigest()[:12]}"


def input_batch(shape, batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def check_model(backend, spec, batch: int, seed: int, static: bool,
                ref: np.ndarray | None = None, weights: dict | None = None, train_out: str | None = None) -> dict:
    """Build ``spec`` and check the network against it. With ``weights`` (canonical) and ``ref`` (the
    numpy evaluator's output for them on the seeded batch) also compare eager and compiled outputs
    with it; with ``train_out``, run one SGD step and save the updated canonical state there."""
    a = analyze(spec)
    t0 = time.perf_counter()
    net = backend.build(spec)
    roundtrip = None
    if weights is not None:
        backend.load_state(net, spec, weights)
        back = backend.get_state(net, spec)  # canonical -> native -> canonical must be bit-exact
        roundtrip = all(np.array_equal(back[k], v) and back[k].dtype == v.dtype for k, v in weights.items())
    params, state = backend.count(net)
    owners = sorted({n.rsplit(".", 1)[0] for n in backend.param_names(net)})
    x = input_batch(spec.input_shape, batch, seed)
    y, shapes = backend.forward(net, x, record_shapes=True)
    expected = a.shapes()
    mismatches = [f"{p}: got {list(shapes[p]) if p in shapes else 'no module'}, spec {list(s)}"
                  for p, s in expected.items() if tuple(shapes.get(p, ())) != tuple(s)]
    leaves = {r.path for r in a.rows if r.is_leaf}
    # modules a framework nests inside one op's module are its implementation, not graph nodes
    extra = sorted(p for p in set(shapes) - set(expected)
                   if not any(p.startswith(leaf + ".") for leaf in leaves))
    mismatches += [f"{p}: module has no spec node" for p in extra]
    problems = []
    if params != a.params:
        problems.append(f"trainable params {params:,} != spec {a.params:,}")
    if state != a.state:
        problems.append(f"state {state:,} != spec {a.state:,}")
    if mismatches:
        problems.append(f"{len(mismatches)} shape mismatch(es): " + "; ".join(mismatches[:5]))
    several = len(spec.outputs) > 1
    outs, want = (y, a.output_shape) if several else ((y,), (a.output_shape,))
    got = [list(v.shape) for v in outs]
    if got != [[batch, *s] for s in want]:
        problems.append(f"output shape {' + '.join(map(str, got))} != spec {' + '.join(str([batch, *s]) for s in want)}")
    if roundtrip is False:
        problems.append("canonical -> native -> canonical round trip is not bit-exact")
    if not all(np.isfinite(v).all() for v in outs):
        problems.append("output has non-finite values")
    static_err = numeric_err = static_numeric_err = None
    ys = None
    if static:
        ys = backend.static_forward(net, x)
        static_err = rel_err(ys, y)
        if not static_err <= STATIC_RTOL:
            problems.append(f"compiled forward differs from eager: max rel err {static_err:.2e}")
    if ref is not None:
        numeric_err = rel_err(y, ref)
        if not numeric_err <= NUMERIC_RTOL:
            problems.append(f"output differs from the numpy reference: max rel err {numeric_err:.2e}")
        if ys is not None:
            static_numeric_err = rel_err(ys, ref)
            if not static_numeric_err <= NUMERIC_RTOL:
                problems.append(f"compiled output differs from the numpy reference: {static_numeric_err:.2e}")
    if train_out is not None and not several:  # the SGD step's loss reads one output
        tspec = without_dropout(spec)
        tnet = backend.build(tspec)
        backend.load_state(tnet, tspec, weights)
        tx, tr = train_inputs(tspec, seed)
        backend.train_step(tnet, tx, tr, TRAIN_LR)
        save_state(backend.get_state(tnet, tspec), train_out)
    return {
        "params": params, "params_spec": a.params, "state": state, "state_spec": a.state,
        "shapes_checked": len(expected), "shapes_ok": len(expected) - (len(mismatches) - len(extra)),
        "shape_mismatches": mismatches,
        "output_shape": got if several else got[0], "param_modules": owners, "static_rel_err": static_err,
        "numeric_rel_err": numeric_err, "static_numeric_rel_err": static_numeric_err, "roundtrip_exact": roundtrip,
        "seconds": round(time.perf_counter() - t0, 2), "problems": problems,
        "status": "pass" if not problems else "fail",
    }


def _reference(path: str):
    """The numpy evaluator's output (a tuple for several, as the backends return them)."""
    with np.load(path, allow_pickle=False) as z:
        ys = tuple(z[f"y{i}"] for i in range(len(z.files)))
    return ys if len(ys) > 1 else ys[0]


def run(backend_name: str, models: list[str], spec_dir: str, batch: int = 2, seed: int = 0,
        compiled: set[str] | None = None, ref_dir: str | None = None, stepped: set[str] | None = None) -> list[dict]:
    """``compiled``: the models whose compiled program is also run, ``stepped``: those whose SGD
    step is taken (default all). ``spec_dir`` holds ``<model>.json`` specs; ``ref_dir`` (numerical mode) ``<model>.npy``
    references, and receives ``<model>.<backend>.train.npz`` states after one training step."""
    backend = load_backend(backend_name)
    results = []
    for name in models:
        try:
            with open(os.path.join(spec_dir, f"{stem(name)}.json")) as f:
                spec = ModelSpec.model_validate_json(f.read())
            ref = _reference(os.path.join(ref_dir, f"{stem(name)}.ref.npz")) if ref_dir else None
            weights = load_state(os.path.join(ref_dir, f"{stem(name)}.state.npz")) if ref_dir else None
            train_out = os.path.join(ref_dir, f"{stem(name)}.{backend_name}.train.npz") \
                if ref_dir and (stepped is None or name in stepped) else None
            r = check_model(backend, spec, batch, seed, compiled is None or name in compiled, ref, weights, train_out)
        except Exception as err:  # report, do not abort the other models
            r = {"status": "error", "problems": [f"{type(err).__name__}: {err}"],
                 "traceback": traceback.format_exc()}
        r.update(model=name, backend=backend_name)
        if not results:
            from ..environment import describe
            env = describe([backend_name])
            r["environment"] = {**{k: v for k, v in env.items() if k != backend_name}, **env[backend_name]}
        results.append(r)
        gc.collect()  # drop this model's networks before building the next
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m onespec.conformance.worker")
    ap.add_argument("--backend", required=True)
    ap.add_argument("--models", required=True, help="comma-separated zoo names")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compiled", help="comma-separated models whose compiled program is run too (default all)")
    ap.add_argument("--stepped", help="comma-separated models whose SGD step is taken (default all)")
    ap.add_argument("--spec-dir", required=True, help="directory of <model>.json specs")
    ap.add_argument("--ref-dir", help="numerical mode: directory of numpy references")
    args = ap.parse_args(argv)
    child_init()
    compiled = None if args.compiled is None else set(filter(None, args.compiled.split(",")))
    stepped = None if args.stepped is None else set(filter(None, args.stepped.split(",")))
    results = run(args.backend, args.models.split(","), args.spec_dir, args.batch, args.seed, compiled, args.ref_dir,
                  stepped)
    with open(args.out, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
