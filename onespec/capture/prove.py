"""The proof of a capture: the captured spec, built with the captured weights in each framework
(each in its own process: paddle and mindspore cannot share one), gives the original module's
outputs on the same input, to a relative tolerance (the largest error over the largest
reference value, per output).

Run as ``python -m onespec.capture.prove --backend FW --dir D``: reads ``D/spec.json``,
``D/state.npz`` and ``D/x.npy``, writes ``D/FW.npz`` (outputs ``y0``, ``y1``, ...)."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from ..backends import FRAMEWORKS

TOLERANCE = 1e-4


def relative_errors(got, want) -> list[float]:
    """Per output: max |got - want| / max |want| (1.0 for a shape mismatch)."""
    got = got if isinstance(got, (tuple, list)) else (got,)
    want = want if isinstance(want, (tuple, list)) else (want,)
    if len(got) != len(want):
        return [1.0] * max(len(want), 1)
    out = []
    for g, w in zip(got, want):
        g, w = np.asarray(g, np.float64), np.asarray(w, np.float64)
        if g.shape != w.shape:
            out.append(1.0)
            continue
        out.append(float(np.abs(g - w).max() / max(np.abs(w).max(), 1e-12)) if w.size else 0.0)
    return out


def prove(spec, state, x: np.ndarray, want, frameworks=FRAMEWORKS, tolerance: float = TOLERANCE) -> dict:
    """{framework: {"errors": [per output], "ok": bool} or {"error": message, "ok": False}}."""
    from .._proc import guarded_tempdir, run_child
    from ..weights import save_state

    results = {}
    with guarded_tempdir("onespec-capture-") as d:
        with open(os.path.join(d, "spec.json"), "w") as f:
            f.write(spec.model_dump_json())
        save_state(state, os.path.join(d, "state.npz"))
        np.save(os.path.join(d, "x.npy"), np.ascontiguousarray(x, np.float32))
        for fw in frameworks:
            code, _, err = run_child(["-m", "onespec.capture.prove", "--backend", fw, "--dir", d],
                                     env={**os.environ, "GLOG_v": "3"})
            path = os.path.join(d, f"{fw}.npz")
            if code != 0 or not os.path.exists(path):
                tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {code}"]
                results[fw] = {"ok": False, "error": tail[0]}
                continue
            with np.load(path) as z:
                got = [z[f"y{i}"] for i in range(len(z.files))]
            errs = relative_errors(got, want)
            results[fw] = {"ok": max(errs) <= tolerance, "errors": errs}
    return results


def _child(backend: str, d: str) -> None:
    from .._proc import child_init
    from ..backends import load_backend
    from ..spec import parse_spec
    from ..weights import load_state

    child_init()
    with open(os.path.join(d, "spec.json")) as f:
        spec = parse_spec(f.read())
    b = load_backend(backend)
    net = b.build(spec)
    b.load_state(net, spec, load_state(os.path.join(d, "state.npz"), spec))
    y, _ = b.forward(net, np.load(os.path.join(d, "x.npy")))
    y = y if isinstance(y, tuple) else (y,)
    np.savez(os.path.join(d, f"{backend}.npz"), **{f"y{i}": v for i, v in enumerate(y)})


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True, choices=FRAMEWORKS)
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    _child(a.backend, a.dir)


if __name__ == "__main__":
    main()
