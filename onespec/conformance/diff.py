"""``onespec diff``: the first node where a framework's network stops computing the spec.

The same canonical state is loaded into the framework's network and into the float64 numpy
reference; one eval-mode forward records every node's input and output on both sides. Nodes are
walked in execution order (the spec's pre-order). Each leaf is *replayed*: the framework's module
alone is run on the reference's input to that node, so its error is its own and not inherited
from upstream; the first leaf off by more than ``tol`` (relative L2) is the culprit. When every
leaf is right, the first combinator (residual add, concat, gate) off by more than ``tol`` is.

For the culprit a reproducer is written: ``node.json`` (a one-node ``ModelSpec``), ``case.npz``
(the input, the node's tensors, the reference output) and the command that replays it:
``onespec diff --replay DIR --backend FW``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from ..backends import check_backend, load_backend
from ..errors import OnespecError
from ..spec import ModelSpec, trace
from ..weights import init_state, layout, load_state, save_state

TOL = 1e-4  # float32 vs float64 per op is ~1e-7-1e-6 relative; a convention error is >= 1e-3


class DiffError(OnespecError, ValueError):
    pass


def _rel(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return float("inf")
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))


@dataclass
class DiffReport:
    model: str
    backend: str
    rows: list[dict]
    first: dict | None
    reproducer: str | None = None
    tol: float = TOL
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.first is None

    def table(self) -> str:
        out = [f"onespec diff {self.model} in {self.backend} vs the float64 numpy reference (eval mode, "
               f"tolerance {self.tol:g} relative)", f"{'node':<44} {'op':<16} {'own error':>10} {'carried':>10}"]
        shown = self.rows if self.first else sorted(self.rows, key=lambda r: -(r["own"] or r["carried"]))[:5]
        if not self.first:
            out[-1] += "   (the 5 largest of " + str(len(self.rows)) + " nodes)"
        for r in shown:
            own = "" if r["own"] is None else ("shape" if r["own"] == float("inf") else f"{r['own']:.1e}")
            car = "shape" if r["carried"] == float("inf") else f"{r['carried']:.1e}"
            mark = "  <-- first divergence" if self.first and r["path"] == self.first["path"] else ""
            out.append(f"{r['path']:<44} {r['op']:<16} {own:>10} {car:>10}{mark}")
            if mark:
                break
        if self.first:
            f = self.first
            out.append(f"FIRST DIVERGENCE: {f['path']} ({f['op']}): {f['why']}")
            if self.reproducer:
                out.append(f"reproducer: {self.reproducer}  (onespec diff --replay {self.reproducer} --backend {self.backend})")
        else:
            out.append(f"no divergence: every node within {self.tol:g}")
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {"model": self.model, "backend": self.backend, "ok": self.ok, "first": self.first, "tol": self.tol,
                "reproducer": self.reproducer, "rows": self.rows}


def diff(spec: ModelSpec, backend: str, net=None, *, state: dict | None = None, seed: int = 0, batch: int = 2,
         tol: float = TOL, out: str | None = None) -> DiffReport:
    """First divergent node of ``net`` (default: a fresh ``backend`` build of ``spec``) loaded with
    ``state`` (default: ``init_state(spec, seed)``), against the numpy reference."""
    check_backend(backend)
    be, ref_be = load_backend(backend), load_backend("numpy")
    state = state if state is not None else init_state(spec, seed)
    if net is None:
        net = be.build(spec)
    be.load_state(net, spec, state)
    ref = ref_be.build(spec)
    ref_be.load_state(ref, spec, state)
    x = np.random.default_rng(seed).standard_normal((batch, *spec.input_shape)).astype(np.float32)
    want, got = ref_be.node_io(ref, x), be.node_io(net, x)
    rows, first = [], None
    for info in trace(spec):
        p = info.path
        if p not in want:
            continue
        carried = _rel(got[p][1], want[p][1]) if p in got else float("inf")
        own = None
        if info.is_leaf:
            try:
                own = _rel(be.run_node(net, p, want[p][0].astype(np.float32)), want[p][1])
            except Exception as err:  # a module that cannot even take the reference input
                own = float("inf")
                rows.append({"path": p, "op": info.op, "own": own, "carried": carried, "error": str(err)})
                continue
        rows.append({"path": p, "op": info.op, "own": own, "carried": carried})
    leaf_bad = next((r for r in rows if r["own"] is not None and r["own"] > tol), None)
    comb_bad = next((r for r in rows if r["own"] is None and r["carried"] > tol), None)
    if leaf_bad:
        first = dict(leaf_bad, why=("output shape differs from the spec's" if leaf_bad["own"] == float("inf") else
                                    f"on the reference's own input its output is off by {leaf_bad['own']:.2e}"))
    elif comb_bad:
        first = dict(comb_bad, why=f"every child is right, the combination is off by {comb_bad['carried']:.2e}")
    rep = DiffReport(spec.name, backend, rows, first, tol=tol)
    if first and out:
        rep.reproducer = write_reproducer(spec, first["path"], state, want[first["path"]], out)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "diff.json"), "w") as f:
            json.dump(rep.to_dict(), f, indent=1, default=float)
        with open(os.path.join(out, "diff.txt"), "w") as f:
            f.write(rep.table() + "\n")
    return rep


def _node_spec(spec: ModelSpec, path: str) -> tuple[ModelSpec, str]:
    info = next(r for r in trace(spec) if r.path == path)
    node = info.node
    one = ModelSpec(name=f"node-{path.replace('.', '-')}"[:128], input_shape=info.in_shape, layers=[node],
                    meta=spec.meta.model_copy(update={"options": {"node": path, "model": spec.name}}))
    return one, node.name


def write_reproducer(spec: ModelSpec, path: str, state: dict, io: tuple, out: str) -> str:
    """``out/<path>/``: node.json, case.npz (x, expected, the node's tensors), replay command."""
    one, name = _node_spec(spec, path)
    d = os.path.join(out, path)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "node.json"), "w") as f:
        f.write(one.model_dump_json(indent=1))
    tensors = {k: state[path + k[len(name):]] for k in layout(one)}
    save_state({"x": io[0].astype(np.float32), "expected": np.asarray(io[1], np.float64),
                **{f"tensor:{k}": v for k, v in tensors.items()}}, os.path.join(d, "case.npz"))
    return d


def replay(directory: str, backend: str, tol: float = TOL) -> tuple[bool, float]:
    """Run a reproducer's node alone in ``backend``: (within tolerance, relative error)."""
    from ..spec import parse_spec

    check_backend(backend)
    try:
        with open(os.path.join(directory, "node.json"), "rb") as f:
            one = parse_spec(f.read())
    except FileNotFoundError:
        raise DiffError(f"{directory} holds no node.json: not a onespec diff reproducer") from None
    case = load_state(os.path.join(directory, "case.npz"))
    be = load_backend(backend)
    net = be.build(one)
    be.load_state(net, one, {k[len("tensor:"):]: v.astype(np.float32) for k, v in case.items() if k.startswith("tensor:")})
    got = be.forward(net, case["x"].astype(np.float32))[0]
    err = _rel(got, case["expected"])
    return err <= tol, err
