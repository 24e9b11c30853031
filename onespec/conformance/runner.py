"""The conformance run: every selected zoo model x every framework, one process per framework."""
from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from ..backends import BACKENDS
from ..zoo import list_models


def select(patterns: list[str] | None) -> list[str]:
    """Zoo names matching any glob pattern (all when none). An unmatched pattern is an error."""
    names = list_models()
    if not patterns:
        return names
    out: list[str] = []
    for pat in patterns:
        hit = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hit:
            raise ValueError(f"no zoo model matches {pat!r}; see `onespec list`")
        out += [n for n in hit if n not in out]
    return out


@dataclass
class Report:
    results: list[dict]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r["status"] == "pass" for r in self.results)

    def totals(self) -> dict[str, dict[str, int]]:
        t: dict[str, dict[str, int]] = {}
        for r in self.results:
            d = t.setdefault(r["backend"], {"pass": 0, "fail": 0, "error": 0})
            d[r["status"]] += 1
        return t

    def to_dict(self) -> dict:
        return {"ok": self.ok, "totals": self.totals(), "seconds": self.seconds, "results": self.results}

    def table(self) -> str:
        head = ("model", "backend", "params", "state", "shapes", "output", "compiled", "time", "status")
        rows = [head]
        for r in self.results:
            if r["status"] == "error":
                rows.append((r["model"], r["backend"], "-", "-", "-", "-", "-", "-", "ERROR"))
                continue
            comp = "-" if r["static_rel_err"] is None else f"{r['static_rel_err']:.1e}"
            rows.append((r["model"], r["backend"], f"{r['params']:,}", f"{r['state']:,}",
                         f"{r['shapes_ok']}/{r['shapes_checked']}", "x".join(map(str, r["output_shape"])), comp,
                         f"{r['seconds']:.1f}s", r["status"].upper()))
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        for r in self.results:
            for p in r["problems"]:
                lines.append(f"! {r['model']} [{r['backend']}]: {p}")
        tot = self.totals()
        summary = ", ".join(f"{b}: {d['pass']}/{sum(d.values())} pass" for b, d in tot.items())
        secs = ", ".join(f"{b} {s:.0f}s" for b, s in self.seconds.items())
        lines.append(f"{summary}  ({secs})")
        lines.append("CONFORMANCE " + ("PASSED" if self.ok else "FAILED"))
        return "\n".join(lines)


def run(models: list[str], backends: list[str] | tuple[str, ...] = BACKENDS, *, batch: int = 2, seed: int = 0,
        static: bool = True, overrides: dict | None = None, progress=None) -> Report:
    """Run the worker for each backend in a fresh interpreter (frameworks never share a process:
    paddle-before-mindspore cannot load in one process)."""
    for b in backends:
        if b not in BACKENDS:
            raise ValueError(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    results: list[dict] = []
    seconds: dict[str, float] = {}
    for b in backends:
        if progress:
            progress(f"[{b}] {len(models)} model(s) ...")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "result.json")
            cmd = [sys.executable, "-m", "onespec.conformance.worker", "--backend", b, "--models", ",".join(models),
                   "--out", out, "--batch", str(batch), "--seed", str(seed),
                   "--overrides", json.dumps(overrides or {})] + ([] if static else ["--no-static"])
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "GLOG_v": "3"})
            seconds[b] = round(time.perf_counter() - t0, 1)
            if proc.returncode != 0 or not os.path.exists(out):
                tail = (proc.stderr or proc.stdout)[-2000:]
                results += [{"model": m, "backend": b, "status": "error",
                             "problems": [f"worker exited with {proc.returncode}: {tail}"]} for m in models]
                continue
            with open(out) as f:
                results += json.load(f)
    return Report(results, seconds)
