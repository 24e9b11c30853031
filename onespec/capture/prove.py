"""The proof of a capture: the captured spec, built with the captured weights in each framework
(each in its own process: paddle and mindspore cannot share one), gives the original module's
outputs on the same input, to a relative tolerance (the largest error over the largest
reference value, per output).

Run as ``python -m onespec.capture.prove --backend FW --dir D --inputs N``: reads
``D/spec.json``, ``D/state.npz`` and ``D/x0.npy`` ... ``D/x{N-1}.npy``, writes ``D/FW.npz``
(output k of input i as ``xi_yk``)."""
from __future__ import annotations

import argparse
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


def prove(spec, state, xs, wants, frameworks=FRAMEWORKS, tolerance: float = TOLERANCE) -> list[dict]:
    """Per input ``xs[i]`` (reference outputs ``wants[i]``): {framework: {"errors": [per output],
    "ok": bool} or {"error": message, "ok": False}}. One process per framework runs every input."""
    from .._proc import guarded_tempdir, run_child
    from ..weights import save_state

    results: list[dict] = [{} for _ in xs]
    with guarded_tempdir("onespec-capture-") as d:
        with open(os.path.join(d, "spec.json"), "w") as f:
            f.write(spec.model_dump_json())
        save_state(state, os.path.join(d, "state.npz"))
        for i, x in enumerate(xs):
            np.save(os.path.join(d, f"x{i}.npy"), np.ascontiguousarray(x, np.float32))
        for fw in frameworks:
            code, _, err = run_child(["-m", "onespec.capture.prove", "--backend", fw, "--dir", d,
                                      "--inputs", str(len(xs))], env={**os.environ, "GLOG_v": "3"})
            path = os.path.join(d, f"{fw}.npz")
            if code != 0 or not os.path.exists(path):
                tail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {code}"]
                for r in results:
                    r[fw] = {"ok": False, "error": tail[0]}
                continue
            with np.load(path) as z:
                for i, want in enumerate(wants):
                    got = [z[f"x{i}_y{k}"] for k in range(sum(f.startswith(f"x{i}_") for f in z.files))]
                    errs = relative_errors(got, want)
                    results[i][fw] = {"ok": max(errs) <= tolerance, "errors": errs}
    return results


def _child(backend: str, d: str, inputs: int) -> None:
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
    out = {}
    for i in range(inputs):
        y, _ = b.forward(net, np.load(os.path.join(d, f"x{i}.npy")))
        out.update({f"x{i}_y{k}": v for k, v in enumerate(y if isinstance(y, tuple) else (y,))})
    np.savez(os.path.join(d, f"{backend}.npz"), **out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True, choices=FRAMEWORKS)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--inputs", type=int, default=1)
    a = ap.parse_args()
    _child(a.backend, a.dir, a.inputs)


if __name__ == "__main__":
    main()
