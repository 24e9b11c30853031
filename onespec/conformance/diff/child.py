"""``onespec diff`` in a process of its own: what ``align`` and ``conformance --numerics`` run
when they fail (frameworks never share a process; the float64 reference joins the judged
framework there)."""
from __future__ import annotations

import json
import os


def diagnose(spec_path: str, backend: str, out: str, *, weights: str | None = None, mode: str = "eval",
             backward: bool = False, seed: int = 0) -> str:
    """Run ``onespec diff`` on a spec file in its own process (frameworks never share one; the
    torch reference joins ``backend`` there) and return its verdict in one line, the report
    being in ``out``. What ``align`` and ``conformance --numerics`` do when they fail."""
    from ..._proc import run_child

    cmd = ["-m", "onespec", "diff", os.path.abspath(spec_path), "--backend", backend, "--mode", mode,
           "--seed", str(seed), "--out", os.path.abspath(out)]
    cmd += (["--backward"] if backward else []) + (["--weights", os.path.abspath(weights)] if weights else [])
    code, _, err = run_child(cmd)
    try:
        with open(os.path.join(out, "diff.json")) as f:
            rep = json.load(f)
    except (OSError, ValueError):
        tail = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()][-1:] or ["no output"]
        return f"onespec diff --backend {backend} did not finish ({tail[0][:300]})"
    parts = []
    for key, what in (("first", f"{mode} forward"), ("backward_first", "backward")):
        f = rep.get(key)
        if f:
            parts.append(f"{what}: {f['path']} ({f['op']}) {f['why']}")
    if not parts:
        return f"onespec diff finds every node of {backend} within tolerance ({mode} mode" + \
               (", forward and backward)" if backward else ")") + f"; report in {out}"
    return f"first divergence in {backend}: " + "; ".join(parts) + f" (report and reproducer in {out})"
