"""The backward walk of ``onespec diff``: nodes from the output back, each replayed alone on the
reference's input and output gradient; its input and parameter gradients compared with the
float64 reference's, within 10x its float32 twin's own error."""
from __future__ import annotations

import numpy as np

from ...spec import analyze, trace
from .common import grad_err, rel, resolution_scale


def walk_backward(spec, be, net, ref, x, seed, train, tol):
    """Backward rows (output to input), the first divergent node, and each node's
    (x, y, gy, dx, grads) from the reference for reproducers."""
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
        terms = resolution_scale(lambda a, b: ref.vjp(p, a, b, train), xin, gy) if rg else {}
        # A gradient that cancels (the bias of a BN whose output feeds another train-mode BN sums
        # to ~0) is float32 noise in any framework: each node's bound is 10x torch float32's own
        # error on it, and at least ``tol``.
        limit = max(tol, 10 * max(rel(dx32, rdx), grad_err(g32, rg, terms)[0] if rg else 0.0))
        kept[p] = (xin, yref, gy, rdx, rg, terms)
        try:
            _, dx, g = be.node_vjp(net, spec, p, xin.astype(np.float32), gy.astype(np.float32), train)
            edx = rel(dx, rdx)
            edw, worst = grad_err(g, rg, terms) if rg else (None, "")
        except Exception as err:
            edx, edw, worst = float("inf"), None, f"{type(err).__name__}: {err}"
        carried = grad_err({k: got_all.get(k) for k in rg}, {k: ref_all[k] for k in rg}, terms)[0] if rg else None
        rows.append({"path": p, "op": info.op, "leaf": info.is_leaf, "dx": edx, "dw": edw, "worst": worst,
                     "carried": carried, "limit": limit})
    # a sequence's backward is its children's, chained: it adds no error of its own, and what its
    # children's (each within its bound) sum to over a deep stage is no verdict on it. Nor is a
    # combination's when one of its children is as far off alone: the error comes from inside
    # (train-mode BN over two samples amplifies a right child's rounding 1e3-fold through a chain:
    # MindSpore on an SE-ResNet18 block, body 7.6e-3, the residual 3.3e-3), where a wrong merge
    # would be off by more than any child
    worst = {row["path"]: max(row["dx"], row["dw"] or 0.0) for row in rows}
    inside = {p: max((e for q, e in worst.items() if q.startswith(p + ".") and "." not in q[len(p) + 1:]),
                     default=0.0) for p in worst}
    bad = [row for row in rows if worst[row["path"]] > row["limit"] and row["op"] != "seq"
           and (row["leaf"] or worst[row["path"]] > 10 * inside[row["path"]])]
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

