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
        out += [f"note: {n}" for n in self.notes]
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
    want, got, notes = ref_be.node_io(ref, x), *_io(be, net, x)
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
    rep = DiffReport(spec.name, backend, rows, first, tol=tol, notes=notes)
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


def module_map(spec: ModelSpec, tensor_map: dict[str, str]) -> dict[str, str]:
    """onespec node path -> foreign module name, from a tensor-name map (an importer's, or a
    user's): ``features.fire2.squeeze.weight -> features.3.squeeze.weight`` gives
    ``features.fire2.squeeze -> features.3.squeeze``. Parameter-free nodes have no counterpart."""
    lay = layout(spec)
    out: dict[str, str] = {}
    for canonical, foreign in tensor_map.items():
        if canonical not in lay:
            raise DiffError(f"name map: {canonical} is not a tensor of {spec.name}")
        node, _, tname = canonical.rpartition(".")
        fmod, _, fname = foreign.rpartition(".")
        if out.setdefault(node, fmod) != fmod:
            raise DiffError(f"name map: {node}'s tensors map to two modules, {out[node]} and {fmod}")
    return out


def diff_foreign(spec: ModelSpec, net, framework: str, *, tensor_map: dict[str, str] | None = None,
                 seed: int = 0, batch: int = 2, tol: float = TOL) -> DiffReport:
    """Compare a hand-written network (``torch.nn.Module``, ``paddle.nn.Layer``,
    ``mindspore.nn.Cell``, with its weights) node by node with ``spec``: the foreign network's
    weights, read through ``tensor_map`` (canonical -> its names; default: the spec's torchvision
    map), go into the float64 reference; each mapped foreign module is replayed on the
    reference's input to its node. Names the first foreign module (and node) that differs."""
    check_backend(framework)
    be, ref_be = load_backend(framework), load_backend("numpy")
    if tensor_map is None:
        from ..importers import torchvision_names
        tensor_map = torchvision_names(spec)
    mods = module_map(spec, tensor_map)
    raw = _foreign_state(net, framework)
    missing = [f for f in tensor_map.values() if f not in raw]
    if missing:
        raise DiffError(f"the foreign network has no tensors {', '.join(missing[:5])} ({len(missing)} in all): "
                        f"pass a name map (canonical name -> its name)")
    state = {c: np.asarray(raw[f], np.float32) for c, f in tensor_map.items()}
    if framework == "paddle":  # Paddle's Linear stores [in, out]
        state = {c: (v.T if layout(spec)[c].op == "linear" and v.ndim == 2 else v) for c, v in state.items()}
    ref = ref_be.build(spec)
    ref_be.load_state(ref, spec, state)
    x = np.random.default_rng(seed).standard_normal((batch, *spec.input_shape)).astype(np.float32)
    want = ref_be.node_io(ref, x)
    got, notes = _io(be, net, x)
    rows, first = [], None
    for info in trace(spec):
        if info.path not in mods or info.path not in want:
            continue
        fname = mods[info.path]
        carried = _rel(got[fname][1], want[info.path][1]) if fname in got else float("inf")
        try:
            own = _rel(be.run_node(net, fname, want[info.path][0].astype(np.float32)), want[info.path][1])
        except Exception:
            own = float("inf")
        row = {"path": info.path, "foreign": fname, "op": info.op, "own": own, "carried": carried}
        rows.append(row)
        if first is None and own > tol:
            first = dict(row, why=(f"{fname} " + ("gives another shape" if own == float("inf") else
                                                   f"is off by {own:.2e} on the reference's input")))
    return DiffReport(spec.name, f"{framework} (foreign network)", rows, first, tol=tol, notes=notes)


def _io(be, net, x):
    """The network's node inputs/outputs; a network so broken its forward fails still gets every
    node replayed on the reference's inputs (carried errors are then unknown)."""
    try:
        return be.node_io(net, x), []
    except Exception as err:
        return {}, [f"the network's own forward fails ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                    f"each node is replayed on the reference's input instead"]


def _foreign_state(net, framework: str) -> dict[str, np.ndarray]:
    if framework == "torch":
        return {k: v.detach().numpy() for k, v in net.state_dict().items()}
    if framework == "paddle":
        return {k: np.asarray(v.numpy()) for k, v in net.state_dict().items()}
    return {k: p.asnumpy() for k, p in net.parameters_and_names()}
