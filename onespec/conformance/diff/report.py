"""``DiffReport``: what ``onespec diff`` found, as a table for the terminal and a dict for
``diff.json``."""
from __future__ import annotations

from dataclasses import dataclass, field

from .common import TOL


@dataclass
class DiffReport:
    model: str
    backend: str
    rows: list[dict]
    first: dict | None
    reproducer: str | None = None
    tol: float = TOL
    notes: list[str] = field(default_factory=list)
    mode: str = "eval"
    reference: str = "numpy float64"
    backward_rows: list[dict] = field(default_factory=list)
    backward_first: dict | None = None
    backward_reproducer: str | None = None
    environment: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.first is None and self.backward_first is None

    def table(self) -> str:
        out = [f"onespec diff {self.model} in {self.backend} vs the {self.reference} reference ({self.mode} mode, "
               f"tolerance {self.tol:g} relative)", f"{'node':<44} {'op':<16} {'own error':>10} {'carried':>10}"]
        foreign = any("foreign" in r for r in self.rows)
        shown = self.rows if self.first else sorted(self.rows, key=lambda r: -(r["own"] or r["carried"]))[:5]
        if not self.first:
            out[-1] += "   (the 5 largest of " + str(len(self.rows)) + " nodes)"
        for r in shown:
            own = "" if r["own"] is None else ("shape" if r["own"] == float("inf") else f"{r['own']:.1e}")
            car = "shape" if r["carried"] == float("inf") else f"{r['carried']:.1e}"
            mark = "  <-- first divergence" if self.first and r["path"] == self.first["path"] else ""
            out.append(f"{r['path']:<44} {r['op']:<16} {own:>10} {car:>10}{mark}"
                       + (f"   ({r['foreign']})" if foreign else ""))
            if mark:
                break
        if self.backward_rows:
            fw = self.reference.split()[0]
            out.append(f"backward, output to input ({self.reference} autograd reference; own = this node alone on the "
                       f"reference's input and output gradient, bound = max(tolerance, 10x {fw} float32's own error); "
                       f"carried = the network's own parameter gradients)")
            out.append(f"{'node':<44} {'op':<16} {'own dx':>10} {'own dW':>10} {'bound':>8} {'carried dW':>11}")
            bf = self.backward_first
            rows = self.backward_rows if bf else sorted(self.backward_rows, key=lambda r: -max(r["dx"], r["dw"] or 0))[:5]
            for r in rows:
                fmt = lambda v: "" if v is None else ("shape" if v == float("inf") else f"{v:.1e}")  # noqa: E731
                mark = "  <-- first divergence" if bf and r["path"] == bf["path"] else ""
                out.append(f"{r['path']:<44} {r['op']:<16} {fmt(r['dx']):>10} {fmt(r['dw']):>10} "
                           f"{r['limit']:>8.0e} {fmt(r['carried']):>11}{mark}")
                if mark:
                    break
        out += [f"note: {n}" for n in self.notes]
        if self.first:
            f = self.first
            out.append(f"FIRST DIVERGENCE ({self.mode} forward): {f['path']} ({f['op']}): {f['why']}")
            if self.reproducer:
                out.append(f"reproducer: {self.reproducer}  (onespec diff --replay {self.reproducer} --backend {self.backend})")
        if self.backward_first:
            f = self.backward_first
            out.append(f"FIRST DIVERGENCE (backward): {f['path']} ({f['op']}): {f['why']}")
            if self.backward_reproducer:
                out.append(f"reproducer: {self.backward_reproducer}  (onespec diff --replay {self.backward_reproducer} "
                           f"--backend {self.backend})")
        if self.ok:
            out.append(f"no divergence: every node within {self.tol:g}" + (" forward and backward" if self.backward_rows else ""))
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {"model": self.model, "backend": self.backend, "mode": self.mode, "reference": self.reference,
                "ok": self.ok, "first": self.first, "backward_first": self.backward_first, "tol": self.tol,
                "reproducer": self.reproducer, "backward_reproducer": self.backward_reproducer, "notes": self.notes,
                "environment": self.environment, "rows": self.rows, "backward_rows": self.backward_rows}
