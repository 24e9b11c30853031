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
            out.append("backward, output to input (torch float64 autograd reference; own = this node alone on the "
                       "reference's input and output gradient, bound = max(tolerance, 10x torch float32's own error); "
                       "carried = the network's own parameter gradients)")
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


def diff(spec: ModelSpec, backend: str, net=None, *, state: dict | None = None, seed: int = 0, batch: int = 2,
         tol: float = TOL, mode: str = "eval", backward: bool = False, out: str | None = None) -> DiffReport:
    """First divergent node of ``net`` (default: a fresh ``backend`` build of ``spec``) loaded with
    ``state`` (default: ``init_state(spec, seed)``), against the float64 reference.

    ``mode="eval"``: the numpy evaluator is the reference. ``mode="train"`` (batch statistics;
    dropout set to 0 in ``spec``, its masks being each framework's own random stream) and
    ``backward``: the reference is the torch build of ``spec`` in float64, itself checked node by
    node against the numpy evaluator in eval mode first. Backward: loss ``sum(y * r)`` with seeded
    ``r``; nodes walked from the output back; each is replayed alone on the reference's input and
    output gradient, and its input gradient and parameter gradients compared (``own``); the
    network's own parameter gradients are compared too (``carried``)."""
    from .numerics import without_dropout

    check_backend(backend)
    if mode not in ("eval", "train"):
        raise DiffError(f"mode must be eval or train, not {mode!r}")
    train = mode == "train"
    be = load_backend(backend)
    state = state if state is not None else init_state(spec, seed)
    notes = []
    if train and any(r.op == "dropout" and r.node.p > 0 for r in trace(spec)):
        spec = without_dropout(spec)
        notes.append("dropout set to p=0: its masks are each framework's own random stream")
        if net is not None:
            notes.append("the network given keeps its own dropout: pass one built without it")
    if net is None:
        net = be.build(spec)
    be.load_state(net, spec, state)
    x = np.random.default_rng(seed).standard_normal((batch, *spec.input_shape)).astype(np.float32)
    ref = None
    if train or backward:
        ref = _torch_reference(spec, state, x)
    if train:
        want = ref.node_io(x, train=True)
        reference = "torch float64"
    else:
        np_be = load_backend("numpy")
        nref = np_be.build(spec)
        np_be.load_state(nref, spec, state)
        want = np_be.node_io(nref, x)
        reference = "numpy float64"
    got, more = _io(be, net, x, train)
    notes += more
    stats = None
    if train:  # the forwards moved running statistics: start each node's replay from the loaded state
        be.load_state(net, spec, state)
        ref.reload(state)
        stats = (lambda: be.get_state(net, spec), ref.state)
    rows, first = _walk_forward(spec, be, net, x, want, got, train, tol, ref if train else None, stats)
    rep = DiffReport(spec.name, backend, rows, first, tol=tol, notes=notes, mode=mode, reference=reference,
                     environment=environment(backend, *(("torch",) if ref is not None else ())))
    if backward:
        rep.backward_rows, rep.backward_first, bw_io = _walk_backward(spec, be, net, ref, x, seed, train, tol)
    if out:
        if first:
            rep.reproducer = write_reproducer(spec, first["path"], state, want[first["path"]], out, train=train)
        if rep.backward_first:
            p = rep.backward_first["path"]
            rep.backward_reproducer = write_reproducer(spec, p, state, bw_io[p][:2], out, train=train,
                                                       backward=bw_io[p][2:], suffix="backward")
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "diff.json"), "w") as f:
            json.dump(rep.to_dict(), f, indent=1, default=float)
        with open(os.path.join(out, "diff.txt"), "w") as f:
            f.write(rep.table() + "\n")
    return rep


def _walk_forward(spec, be, net, x, want, got, train, tol, ref=None, stats=None):
    """Forward rows in execution order and the first divergent node. In train mode (``stats`` =
    (the network's state, the reference's state) getters) a node with running statistics is also
    judged on them after its one replayed train-mode step (momentum and variance conventions)."""
    lay = layout(spec)
    # Against the torch float64 reference (train mode), each node's bound is 10x torch float32's
    # own error there, and at least ``tol``: train-mode BN over a batch of 2 at 1x1 maps
    # normalises two numbers, and float32 alone then carries 1e-3 through a MobileNet.
    noise = ref.node_io32(x, train) if ref is not None else None
    rows, first = [], None
    for info in trace(spec):
        p = info.path
        if p not in want:
            continue
        carried = _rel(got[p][1], want[p][1]) if p in got else float("inf")
        own, row = None, {}
        limit = tol
        if noise is not None and p in noise:
            limit = max(tol, 10 * (_rel(ref.run_node32(p, want[p][0], train), want[p][1]) if info.is_leaf
                                   else _rel(noise[p][1], want[p][1])))
        row["limit"] = limit
        if info.is_leaf:
            try:
                own = _rel(be.run_node(net, p, want[p][0].astype(np.float32), train=train), want[p][1])
            except Exception as err:  # a module that cannot even take the reference input
                own = float("inf")
                rows.append({"path": p, "op": info.op, "own": own, "carried": carried, "error": str(err), **row})
                continue
            running = [k for k, t in lay.items() if not t.trainable and k.rsplit(".", 1)[0] == p]
            if stats and running:
                ref.run_node(p, want[p][0], train=True)
                mine, theirs = stats[0](), stats[1]()
                row["stats"] = max(_rel(mine[k], theirs[k]) for k in running)
        rows.append({"path": p, "op": info.op, "own": own, "carried": carried, **row})
    leaf_bad = next((r for r in rows if r["own"] is not None and max(r["own"], r.get("stats", 0.0)) > r["limit"]),
                    None)
    comb_bad = next((r for r in rows if r["own"] is None and r["carried"] > r["limit"]), None)
    if leaf_bad:
        first = dict(leaf_bad, why=("output shape differs from the spec's" if leaf_bad["own"] == float("inf") else
                                    f"on the reference's own input its output is off by {leaf_bad['own']:.2e}"
                                    if leaf_bad["own"] > leaf_bad["limit"] else
                                    f"its output is right but its running statistics after one train-mode step "
                                    f"are off by {leaf_bad['stats']:.2e} (momentum or variance convention)"))
    elif comb_bad:
        first = dict(comb_bad, why=f"every child is right, the combination is off by {comb_bad['carried']:.2e}")
    return rows, first


class _Reference:
    """The torch build of a spec in float64: train-mode forward and autograd for ``diff``."""

    def __init__(self, spec, state):
        import torch  # noqa: F401  (the reference is torch in float64)

        self.spec, self.be = spec, load_backend("torch")
        self.net = self.be.build(spec)
        self.be.load_state(self.net, spec, state)
        self.net.double()
        self.net32 = self.be.build(spec)
        for m in (*self.net.modules(), *self.net32.modules()):  # output-gradient hooks need every output kept
            if getattr(m, "inplace", False):
                m.inplace = False  # float32: how far float32 alone takes a node's gradients
        self.be.load_state(self.net32, spec, state)

    def node_io(self, x, train):
        return self.be.node_io(self.net, np.asarray(x, np.float64), train=train)

    def reload(self, state):
        self.be.load_state(self.net, self.spec, state)
        self.net.double()

    def state(self):
        return {k: v.detach().numpy() for k, v in self.net.state_dict().items()}

    def run_node(self, path, x, train):
        return self.be.run_node(self.net, path, np.asarray(x, np.float64), train=train)

    def vjp(self, path, x, gy, train):
        return self.be.node_vjp(self.net, self.spec, path, np.asarray(x, np.float64), np.asarray(gy, np.float64), train)

    def node_io32(self, x, train):
        return self.be.node_io(self.net32, np.asarray(x, np.float32), train=train)

    def run_node32(self, path, x, train):
        return self.be.run_node(self.net32, path, np.asarray(x, np.float32), train=train)

    def vjp32(self, path, x, gy, train):
        return self.be.node_vjp(self.net32, self.spec, path, np.asarray(x, np.float32), np.asarray(gy, np.float32),
                                train)

    def output_grads(self, x, r, train):
        return self.be.runtime.output_grads(self.net, np.asarray(x, np.float64), np.asarray(r, np.float64), train)


def _torch_reference(spec, state, x) -> _Reference:
    """The float64 torch reference, refused unless its eval forward equals the numpy evaluator's
    at every node (1e-9): a convention error in the torch emitter would otherwise be inherited."""
    ref = _Reference(spec, state)
    np_be = load_backend("numpy")
    nref = np_be.build(spec)
    np_be.load_state(nref, spec, state)
    want, got = np_be.node_io(nref, x), ref.node_io(x, train=False)
    for info in trace(spec):
        if info.path in want and _rel(got.get(info.path, (None, np.zeros(0)))[1], want[info.path][1]) > 1e-9:
            raise DiffError(f"the train-mode/backward reference (torch, float64) differs from the numpy evaluator at "
                            f"{info.path} in eval mode: run `onespec diff {spec.name} --backend torch` first")
    return ref


def _grad_err(got: dict, want: dict) -> tuple[float, str]:
    """Worst relative L2 error over gradient tensors, each floored at 1e-3 x the largest gradient's
    norm: a gradient that is zero in exact arithmetic (a bias before a train-mode BN) is float
    noise in both, and noise is not compared with noise."""
    if not want:
        return 0.0, ""
    floor = 1e-3 * max(float(np.linalg.norm(v)) for v in want.values())
    worst, name = 0.0, ""
    for k, w in want.items():
        g = got.get(k)
        if g is None or np.shape(g) != np.shape(w):
            return float("inf"), k
        e = float(np.linalg.norm(np.asarray(g, np.float64) - w)) / max(float(np.linalg.norm(w)), floor, 1e-30)
        if e > worst:
            worst, name = e, k
    return worst, name


def _walk_backward(spec, be, net, ref, x, seed, train, tol):
    """Backward rows (output to input), the first divergent node, and each node's
    (x, y, gy, dx, grads) from the reference for reproducers."""
    out_shape = (x.shape[0], *spec.output_shape) if hasattr(spec, "output_shape") else None
    from ..spec import analyze

    r = np.random.default_rng([seed, 2]).standard_normal((x.shape[0], *analyze(spec).output_shape))
    io = ref.node_io(x, train)
    gys = ref.output_grads(x, r, train)
    _, _, ref_all = ref.vjp("", x, r, train)
    _, _, got_all = be.node_vjp(net, spec, "", x, r.astype(np.float32), train)
    rows, kept = [], {}
    for info in reversed(trace(spec)):
        p = info.path
        if p not in gys or p not in io or info.op == "identity":
            continue
        xin, yref = io[p]
        gy = gys[p]
        _, rdx, rg = ref.vjp(p, xin, gy, train)
        _, dx32, g32 = ref.vjp32(p, xin, gy, train)
        # A gradient that cancels (the bias of a BN whose output feeds another train-mode BN sums
        # to ~0) is float32 noise in any framework: each node's bound is 10x torch float32's own
        # error on it, and at least ``tol``.
        limit = max(tol, 10 * max(_rel(dx32, rdx), _grad_err(g32, rg)[0] if rg else 0.0))
        kept[p] = (xin, yref, gy, rdx, rg)
        try:
            _, dx, g = be.node_vjp(net, spec, p, xin.astype(np.float32), gy.astype(np.float32), train)
            edx = _rel(dx, rdx)
            edw, worst = _grad_err(g, rg) if rg else (None, "")
        except Exception as err:
            edx, edw, worst = float("inf"), None, f"{type(err).__name__}: {err}"
        carried = _grad_err({k: got_all.get(k) for k in rg}, {k: ref_all[k] for k in rg})[0] if rg else None
        rows.append({"path": p, "op": info.op, "leaf": info.is_leaf, "dx": edx, "dw": edw, "worst": worst,
                     "carried": carried, "limit": limit})
    bad = [row for row in rows if max(row["dx"], row["dw"] or 0.0) > row["limit"]]
    first = next((row for row in bad if row["leaf"]), bad[0] if bad else None)
    if first:
        parts = []
        lim = first["limit"]
        if first["dx"] > lim:
            parts.append(f"its input gradient is off by {first['dx']:.2e}")
        if (first["dw"] or 0.0) > lim:
            parts.append(f"its parameter gradient {first['worst']} is off by {first['dw']:.2e}")
        parts[-1] += f" (bound {lim:.1e})"
        first = dict(first, why=" and ".join(parts) + " on the reference's input and output gradient"
                     + ("" if first["leaf"] else " (every child is right: the combination's backward)"))
    return rows, first, kept


def environment(*backends: str) -> dict:
    """The numerics environment of a report: each framework's version, threads, device and (torch
    on GPU) the TF32 and cuDNN determinism flags; numpy's version and BLAS threads."""
    from ..environment import describe

    return describe(("numpy", *backends))


def _node_spec(spec: ModelSpec, path: str) -> tuple[ModelSpec, str]:
    info = next(r for r in trace(spec) if r.path == path)
    node = info.node
    one = ModelSpec(name=f"node-{path.replace('.', '-')}"[:128], input_shape=info.in_shape, layers=[node],
                    meta=spec.meta.model_copy(update={"options": {"node": path, "model": spec.name}}))
    return one, node.name


def write_reproducer(spec: ModelSpec, path: str, state: dict, io: tuple, out: str, *, train: bool = False,
                     backward: tuple | None = None, suffix: str = "") -> str:
    """``out/<path>[.suffix]/``: node.json (a one-node spec), case.npz (x, the expected output, the
    node's tensors, the mode; with ``backward`` = (gy, dx, grads) also the output gradient and the
    expected input and parameter gradients), the replay command in README.txt."""
    one, name = _node_spec(spec, path)
    d = os.path.join(out, path + (f".{suffix}" if suffix else ""))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "node.json"), "w") as f:
        f.write(one.model_dump_json(indent=1))
    tensors = {k: state[path + k[len(name):]] for k in layout(one)}
    case = {"x": io[0].astype(np.float32), "expected": np.asarray(io[1], np.float64),
            "train": np.asarray(train), **{f"tensor:{k}": v for k, v in tensors.items()}}
    if backward is not None:
        gy, dx, grads = backward
        case.update({"gy": np.asarray(gy, np.float64), "expected_dx": np.asarray(dx, np.float64),
                     **{f"grad:{name + k[len(path):]}": np.asarray(v, np.float64) for k, v in grads.items()}})
    save_state(case, os.path.join(d, "case.npz"))
    with open(os.path.join(d, "README.txt"), "w") as f:
        f.write(f"{path} of {spec.name}, {'train' if train else 'eval'} mode{', backward' if backward else ''}.\n"
                f"replay: onespec diff --replay {d} --backend BACKEND\n")
    return d


def replay(directory: str, backend: str, tol: float = TOL) -> tuple[bool, float]:
    """Run a reproducer's node alone in a fresh ``backend`` build: (within tolerance, relative
    error), the error being the worst of the output and, for a backward case, the input and
    parameter gradients."""
    from ..spec import parse_spec

    check_backend(backend)
    try:
        with open(os.path.join(directory, "node.json"), "rb") as f:
            one = parse_spec(f.read())
    except FileNotFoundError:
        raise DiffError(f"{directory} holds no node.json: not a onespec diff reproducer") from None
    case = load_state(os.path.join(directory, "case.npz"))
    train = bool(case.get("train", False))
    be = load_backend(backend)
    net = be.build(one)
    be.load_state(net, one, {k[len("tensor:"):]: v.astype(np.float32) for k, v in case.items() if k.startswith("tensor:")})
    x = case["x"].astype(np.float32)
    if "gy" not in case:
        got = be.run_node(net, one.layers[0].name, x, train=train) if train else be.forward(net, x)[0]
        err = _rel(got, case["expected"])
        return err <= tol, err
    y, dx, grads = be.node_vjp(net, one, "", x, case["gy"].astype(np.float32), train=train)
    want = {k[len("grad:"):]: v for k, v in case.items() if k.startswith("grad:")}
    err = max(_rel(y, case["expected"]), _rel(dx, case["expected_dx"]), _grad_err(grads, want)[0] if want else 0.0)
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


def _library_map(spec: ModelSpec, framework: str, raw) -> tuple[dict[str, str], dict[str, float]]:
    """The name map of the first library of ``framework`` (torchvision, timm; PaddleClas; MindCV,
    the MindSpore model zoo) whose names the foreign network has, with its import scales."""
    from ..importers import import_scales, library_names, libraries_for

    libs = libraries_for(spec.name, framework)
    for lib in libs:
        names = library_names(spec, lib)
        if all(n in raw for n in names.values()):
            return names, import_scales(spec.name, lib)
    if not libs:
        raise DiffError(f"{spec.name} has no name map for a {framework} library: pass --map (canonical name -> "
                        f"your network's name)")
    return library_names(spec, libs[0]), {}  # the missing names are listed by the caller


def diff_foreign(spec: ModelSpec, net, framework: str, *, tensor_map: dict[str, str] | None = None,
                 seed: int = 0, batch: int = 2, tol: float = TOL) -> DiffReport:
    """Compare a hand-written network (``torch.nn.Module``, ``paddle.nn.Layer``,
    ``mindspore.nn.Cell``, with its weights) node by node with ``spec``: the foreign network's
    weights, read through ``tensor_map`` (canonical -> its names; default: the name map of the
    first library of that framework whose names the network has: torchvision or timm, PaddleClas,
    MindCV or the MindSpore model zoo), go into the float64 reference; each mapped foreign module is replayed on the
    reference's input to its node. Names the first foreign module (and node) that differs."""
    check_backend(framework)
    be, ref_be = load_backend(framework), load_backend("numpy")
    raw = _foreign_state(net, framework)
    scales: dict[str, float] = {}
    if tensor_map is None:
        tensor_map, scales = _library_map(spec, framework, raw)
    mods = module_map(spec, tensor_map)
    missing = [f for f in tensor_map.values() if f not in raw]
    if missing:
        raise DiffError(f"the foreign network has no tensors {', '.join(missing[:5])} ({len(missing)} in all): "
                        f"pass a name map (canonical name -> its name)")
    from ..importers import fit
    lay = layout(spec)
    state = {}
    for c, f in tensor_map.items():
        v = fit(raw[f], lay[c].shape, framework == "paddle" and lay[c].op == "linear" and np.ndim(raw[f]) == 2)
        if v is None:  # Paddle's Linear stores [in, out]; a library's 1x1 conv may stand for a Linear
            raise DiffError(f"the foreign network's {f} has shape {np.shape(raw[f])}, {c} is {lay[c].shape}")
        state[c] = np.asarray(v * scales.get(c, 1.0), np.float32)
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


def _io(be, net, x, train: bool = False):
    """The network's node inputs/outputs; a network so broken its forward fails still gets every
    node replayed on the reference's inputs (carried errors are then unknown)."""
    try:
        return be.node_io(net, x, train=train), []
    except Exception as err:
        return {}, [f"the network's own forward fails ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                    f"each node is replayed on the reference's input instead"]


def _foreign_state(net, framework: str) -> dict[str, np.ndarray]:
    method = "parameters_and_names" if framework == "mindspore" else "state_dict"
    if not callable(getattr(net, method, None)):  # a function that returned None, a class, a tuple
        raise DiffError(f"the foreign network is a {type(net).__name__}, not a {framework} network "
                        f"(it has no {method}())")
    if framework == "torch":
        return {k: v.detach().numpy() for k, v in net.state_dict().items()}
    if framework == "paddle":
        return {k: np.asarray(v.numpy()) for k, v in net.state_dict().items()}
    # a parameter's own name: what a checkpoint of the network holds (a cell registered twice,
    # MindCV's squeezenet final_conv, has another path than its parameters' names)
    return {p.name: p.asnumpy() for _, p in net.parameters_and_names()}


def diagnose(spec_path: str, backend: str, out: str, *, weights: str | None = None, mode: str = "eval",
             backward: bool = False, seed: int = 0) -> str:
    """Run ``onespec diff`` on a spec file in its own process (frameworks never share one; the
    torch reference joins ``backend`` there) and return its verdict in one line, the report
    being in ``out``. What ``align`` and ``conformance --numerics`` do when they fail."""
    from .._proc import run_child

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
