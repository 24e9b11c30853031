"""``diff()``: one framework's network against the float64 reference, forward (and backward),
node by node, with a reproducer for the first divergent node."""
from __future__ import annotations

import json
import os

import numpy as np

from ...backends import check_backend, load_backend
from ...errors import OnespecError
from ...spec import ModelSpec, trace
from ...weights import init_state
from .backward import walk_backward
from .common import TOL, DiffError, environment
from .forward import network_io, walk_forward
from .reference import float64_reference, reference_framework
from .report import DiffReport
from .reproducer import write_reproducer


def diff(spec: ModelSpec, backend: str, net=None, *, state: dict | None = None, seed: int = 0, batch: int = 2,
         tol: float = TOL, mode: str = "eval", backward: bool = False, out: str | None = None) -> DiffReport:
    """First divergent node of ``net`` (default: a fresh ``backend`` build of ``spec``) loaded with
    ``state`` (default: ``init_state(spec, seed)``), against the float64 reference.

    ``mode="eval"``: the numpy evaluator is the reference. ``mode="train"`` (batch statistics;
    dropout set to 0 in ``spec``, its masks being each framework's own random stream) and
    ``backward``: the reference is the backend contract's float64 autograd build of ``spec``
    (:mod:`.reference`), itself checked node by node against the numpy evaluator in eval mode
    first. Backward: loss ``sum(y * r)`` with seeded ``r``; nodes walked from the output back; each
    is replayed alone on the reference's input and output gradient, and its input gradient and
    parameter gradients compared (``own``); the network's own parameter gradients are compared
    too (``carried``)."""
    from ..numerics import without_dropout

    check_backend(backend)
    if backward:  # the loss sum(y * r) is over one output
        from ...spec.analysis import single_output
        single_output(spec, "diff --backward")
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
    ref = float64_reference(spec, state, x) if train or backward else None
    want, reference = _expected(spec, state, x, ref, train)
    got, more = network_io(be, net, x, train)
    notes += more

    def reset():  # the forwards moved running statistics: each node's replay starts from the loaded state
        be.load_state(net, spec, state)
        ref.reload(state)

    rows, first, stats = walk_forward(spec, be, net, x, want, got, train, tol, ref, reset if train else None)
    if ref is None and first is not None:  # eval: the float32 twin's bounds, built only when a node is over 1e-4
        twin = _twin(spec, state, x)
        if twin is not None:
            rows, first, stats = walk_forward(spec, be, net, x, want, got, train, tol, twin, None)
    rep = DiffReport(spec.name, backend, rows, first, tol=tol, notes=notes, mode=mode, reference=reference,
                     environment=environment(backend, *((reference_framework(),) if ref is not None else ())))
    bw_io = {}
    if backward:
        rep.backward_rows, rep.backward_first, bw_io = walk_backward(spec, be, net, ref, x, seed, train, tol)
    if out:
        _write(rep, spec, state, want, stats, bw_io, out, train)
    return rep


def _twin(spec, state, x):
    """In eval mode, the float64 reference's float32 twin for the bounds (each node within 10x
    the twin's own error), or None where no reference framework is installed. Its error is what
    float32 can resolve of each node's output: carried through a deep network whose BN statistics
    come from two samples (MobileNetV2 at 32x32: a 1x1 map normalised by a variance from two
    values), rounding reaches 1e-3 to 1e-2 in every framework, torch's own build included, where a
    fixed 1e-4 would name a right network."""
    try:
        return float64_reference(spec, state, x)
    except (OnespecError, ImportError):
        return None


def _expected(spec, state, x, ref, train: bool):
    """Every node's (input, output) in the reference, and the reference's name."""
    if train:
        return ref.node_io(x, train=True), f"{reference_framework()} float64"
    np_be = load_backend("numpy")
    nref = np_be.build(spec)
    np_be.load_state(nref, spec, state)
    return np_be.node_io(nref, x), "numpy float64"


def _write(rep: DiffReport, spec, state, want, stats, bw_io, out: str, train: bool) -> None:
    """Reproducers of the first divergences (forward, backward) and diff.json / diff.txt in ``out``."""
    first = rep.first
    if first:
        rep.reproducer = write_reproducer(spec, first["path"], state, want[first["path"]], out, train=train,
                                          stats=stats.get(first["path"]), bound=first["limit"],
                                          stats_bound=first.get("stats_limit"))
    if rep.backward_first:
        p = rep.backward_first["path"]
        rep.backward_reproducer = write_reproducer(spec, p, state, bw_io[p][:2], out, train=train,
                                                   backward=bw_io[p][2:], suffix="backward",
                                                   bound=rep.backward_first["limit"])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "diff.json"), "w") as f:
        json.dump(rep.to_dict(), f, indent=1, default=float)
    with open(os.path.join(out, "diff.txt"), "w") as f:
        f.write(rep.table() + "\n")
