"""The forward walk of ``onespec diff``: every node in execution order, each leaf replayed alone
on the reference's input to it, and (train mode) each node's running statistics after its one
replayed step."""
from __future__ import annotations

import numpy as np

from ...spec import trace
from ...weights import layout
from .common import rel, stat_err


def network_io(be, net, x, train: bool = False):
    """The network's node inputs/outputs; a network so broken its forward fails still gets every
    node replayed on the reference's inputs (carried errors are then unknown)."""
    try:
        return be.node_io(net, x, train=train), []
    except Exception as err:
        return {}, [f"the network's own forward fails ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                    f"each node is replayed on the reference's input instead"]


def walk_forward(spec, be, net, x, want, got, train, tol, ref=None, reset=None):
    """Forward rows in execution order, the first divergent node, and per node with running
    statistics the reference's after its step (for a reproducer). Against the float64 autograd
    reference ``ref`` (train mode), each node's bound is 10x its float32 twin's own error there,
    and at least ``tol``: train-mode BN over a batch of 2 at 1x1 maps normalises two numbers, and
    float32 alone then carries 1e-3 through a MobileNet. ``reset()`` puts the network and the
    reference back to the loaded state; a node with running statistics is then also judged on
    them after its one replayed train-mode step (momentum and variance conventions), against 10x
    the float32 twin's error on them."""
    noise = ref.node_io32(x, train) if ref is not None else None
    if reset:
        reset()
    rows, expected = [], {}
    for info in trace(spec):
        if info.path in want:
            rows.append(_row(spec, info, be, net, want, got, train, tol, ref, noise, reset, expected))
    return rows, _first(rows), expected


def _row(spec, info, be, net, want, got, train, tol, ref, noise, reset, expected: dict) -> dict:
    """One node's row; ``expected[path]``: the reference's running statistics after its step."""
    p = info.path
    # a graph's merge reads several tensors, and the recorded input is its first only: it is
    # judged on its carried error, as a combinator is
    alone = info.is_leaf and info.op != "merge"
    row = {"path": p, "op": info.op, "own": None, "carried": rel(got[p][1], want[p][1]) if p in got else float("inf"),
           "limit": tol}
    if noise is not None and p in noise:
        row["limit"] = max(tol, 10 * (rel(ref.run_node32(p, want[p][0], train), want[p][1]) if alone
                                      else rel(noise[p][1], want[p][1])))
    if not alone:
        if info.op != "merge" and row["carried"] > row["limit"]:
            _replay_block(row, be, net, want[p], train, tol, ref, reset)
        return row
    try:
        row["own"] = rel(be.run_node(net, p, want[p][0].astype(np.float32), train=train), want[p][1])
    except Exception as err:  # a module that cannot even take the reference input
        return dict(row, own=float("inf"), error=str(err))
    roles = {k: t.role for k, t in layout(spec).items() if not t.trainable and k.rsplit(".", 1)[0] == p}
    if reset and roles:
        ref.run_node(p, want[p][0], train=True)
        theirs = ref.state()
        row["stats"], row["stats_worst"] = stat_err(be.get_state(net, spec), theirs, roles)
        row["stats_limit"] = max(tol, 10 * stat_err(ref.state32(), theirs, roles)[0])
        expected[p] = {k: theirs[k] for k in roles}
    return row


def _replay_block(row: dict, be, net, io, train, tol, ref, reset) -> None:
    """A block whose carried error is over its bound, replayed alone on the reference's input to
    it (``row["block"]``), against 10x its float32 twin's error there: what the network carries
    into a block through an ill-conditioned stage (train-mode BN of two samples at a 1x1 map, as
    in ShuffleNet's last stage at 32x32) is rounding amplified upstream, not the block's."""
    p = row["path"]
    try:
        row["block"] = rel(be.run_node(net, p, io[0].astype(np.float32), train=train), io[1])
    except Exception:  # noqa: BLE001 - a block that cannot take the input alone is judged carried
        return
    row["block_limit"] = max(tol, 10 * rel(ref.run_node32(p, io[0], train), io[1])) if ref is not None else tol
    if reset:  # the replay moved the running statistics of every node inside the block
        reset()


def _first(rows: list[dict]) -> dict | None:
    leaf_bad = next((r for r in rows if r["own"] is not None and (r["own"] > r["limit"]
                                                                   or r.get("stats", 0.0) > r.get("stats_limit", 0.0))),
                    None)
    if leaf_bad:
        if leaf_bad["own"] == float("inf"):
            why = "output shape differs from the spec's"
        elif leaf_bad["own"] > leaf_bad["limit"]:
            why = f"on the reference's own input its output is off by {leaf_bad['own']:.2e}"
        else:
            why = (f"its output is right but its running statistics after one train-mode step are off by "
                   f"{leaf_bad['stats']:.2e} ({leaf_bad['stats_worst']}; bound {leaf_bad['stats_limit']:.1e}; "
                   f"momentum or variance convention)")
        return dict(leaf_bad, why=why)
    comb_bad = next((r for r in rows if r["own"] is None and r["carried"] > r["limit"]
                     and r.get("block", float("inf")) > r.get("block_limit", 0.0)), None)
    if comb_bad:
        alone = f" (alone on the reference's input: {comb_bad['block']:.2e})" if "block" in comb_bad else ""
        return dict(comb_bad, why=f"every child is right, the combination is off by {comb_bad['carried']:.2e}{alone}")
    return None
