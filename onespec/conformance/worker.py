"""One framework, one process: build each model, count, run a seeded eval batch with every
intermediate shape recorded, run the compiled program, and compare all of it with the spec.

Run as ``python -m onespec.conformance.worker --backend B --models a,b --out result.json``;
the runner starts one of these per framework so that frameworks never share a process.
"""
from __future__ import annotations

import argparse
import json
import time
import traceback

import numpy as np

from ..backends import load_backend
from ..spec import analyze
from ..zoo import get_spec

# identical kernels in eager and compiled runs still fuse differently; relative to output scale
STATIC_RTOL = 1e-4


def input_batch(shape, batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *shape)).astype(np.float32)


def check_model(backend, name: str, batch: int, seed: int, static: bool, overrides: dict | None = None) -> dict:
    spec = get_spec(name, **(overrides or {}))
    a = analyze(spec)
    t0 = time.perf_counter()
    net = backend.build(spec)
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
    if tuple(y.shape) != (batch, *a.output_shape):
        problems.append(f"output shape {list(y.shape)} != spec {[batch, *a.output_shape]}")
    if not np.isfinite(y).all():
        problems.append("output has non-finite values")
    static_err = None
    if static:
        ys = backend.static_forward(net, x)
        scale = max(float(np.abs(y).max()), 1e-12)
        static_err = float(np.abs(ys - y).max()) / scale if ys.shape == y.shape else float("inf")
        if not static_err <= STATIC_RTOL:
            problems.append(f"compiled forward differs from eager: max rel err {static_err:.2e}")
    return {
        "params": params, "params_spec": a.params, "state": state, "state_spec": a.state,
        "shapes_checked": len(expected), "shapes_ok": len(expected) - (len(mismatches) - len(extra)),
        "shape_mismatches": mismatches,
        "output_shape": list(y.shape), "param_modules": owners, "static_rel_err": static_err,
        "seconds": round(time.perf_counter() - t0, 2), "problems": problems,
        "status": "pass" if not problems else "fail",
    }


def run(backend_name: str, models: list[str], batch: int = 2, seed: int = 0, static: bool = True,
        overrides: dict | None = None) -> list[dict]:
    backend = load_backend(backend_name)
    results = []
    for name in models:
        try:
            r = check_model(backend, name, batch, seed, static, overrides)
        except Exception as err:  # report, do not abort the other models
            r = {"status": "error", "problems": [f"{type(err).__name__}: {err}"],
                 "traceback": traceback.format_exc()}
        r.update(model=name, backend=backend_name, overrides=overrides or {})
        results.append(r)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m onespec.conformance.worker")
    ap.add_argument("--backend", required=True)
    ap.add_argument("--models", required=True, help="comma-separated zoo names")
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-static", action="store_true")
    ap.add_argument("--overrides", default="{}", help="JSON object of get_spec overrides")
    args = ap.parse_args(argv)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(args.overrides).items()}
    results = run(args.backend, args.models.split(","), args.batch, args.seed, not args.no_static, overrides)
    with open(args.out, "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
