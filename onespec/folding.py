"""Inference folding at the spec level: ``onespec.fold(spec, state) -> (spec, state)``.

What the folded network computes equals the eval-mode network (to float rounding); it has fewer
nodes, so every backend and every export runs fewer kernels:

- a BatchNorm that directly follows a conv or linear in a sequence is folded into it
  (Ioffe & Szegedy 2015, eq. in Sec. 3: ``y = gamma * (x - mean) / sqrt(var + eps) + beta``;
  with ``s = gamma / sqrt(var + eps)``: ``W' = s * W`` per output channel and
  ``b' = s * (b - mean) + beta``), computed in float64 and stored in float32;
- dropout (identity at inference) and identities inside a sequence are removed.

Node paths are names, so every remaining node keeps its path and tensor names: the folded state
is the original with the BN tensors gone and the folded convs' weights and (new) biases replaced.
An identity that is a branch (a residual shortcut) stays: it is the graph, not a no-op in a
sequence. A BN anywhere else (after an add, a concat, a pool, first in a block) is kept.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .errors import OnespecError
from .spec import ModelSpec
from .weights import check_state

FOLDABLE = ("conv", "linear")


class FoldError(OnespecError, ValueError):
    pass


def fold(spec: ModelSpec, state: Mapping[str, np.ndarray], dtype=np.float32
         ) -> tuple[ModelSpec, dict[str, np.ndarray]]:
    """The inference form of ``spec`` with canonical ``state`` (checked first): BN folded into
    the preceding conv/linear, dropout and in-sequence identities removed. Folded in float64,
    stored as ``dtype`` (float64 keeps the fold exact, for checking it)."""
    if spec.meta.options.get("folded"):
        raise FoldError(f"{spec.name} is folded already")
    check_state(spec, state)
    src = {k: np.asarray(v) for k, v in state.items()}
    out: dict[str, np.ndarray] = {}
    dropped: set[str] = set()

    def node(d: dict, path: str) -> dict:
        if d["op"] == "seq":
            return {**d, "layers": seq(d["layers"], path)}
        if d["op"] == "parallel":
            return {**d, "branches": [node(b, f"{path}.{b['name']}") for b in d["branches"]]}
        if "gate" in d:  # scale, shift_max
            return {**d, "gate": node(d["gate"], f"{path}.{d['gate']['name']}")}
        return d

    def seq(layers: list[dict], path: str) -> list[dict]:
        kept: list[dict] = []
        i = 0
        while i < len(layers):
            d = layers[i]
            p = f"{path}.{d['name']}" if path else d["name"]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if d["op"] in ("dropout", "identity") and (kept or i + 1 < len(layers)):
                dropped.add(p)
                i += 1
                continue
            if d["op"] in FOLDABLE and nxt is not None and nxt["op"] == "batchnorm":
                bn = f"{path}.{nxt['name']}" if path else nxt["name"]
                kept.append(_fold_pair(d, p, nxt, bn, src, out))
                dropped.add(bn)
                i += 2
                continue
            kept.append(node(d, p))
            i += 1
        return kept

    doc = spec.model_dump()
    doc["layers"] = seq(doc["layers"], "")
    doc["meta"] = {**doc["meta"], "options": {**doc["meta"]["options"], "folded": True}}
    folded = ModelSpec.model_validate(doc)
    from .weights import layout

    new = layout(folded)
    for k in new:
        if k not in out:
            out[k] = src[k]
    lost = [k for k in src if k not in new and not any(k.startswith(p + ".") for p in dropped)]
    if lost:  # only the folded BNs' and removed nodes' tensors may go
        raise FoldError(f"folding {spec.name} would drop {', '.join(lost[:5])}")
    return folded, {k: np.ascontiguousarray(out[k], dtype) for k in new}


def _fold_pair(conv: dict, cpath: str, bn: dict, bpath: str, src, out) -> dict:
    """``conv`` (or linear) followed by ``bn``: the conv with the BN in its weight and bias."""
    w = src[f"{cpath}.weight"].astype(np.float64)
    c = w.shape[0]
    mean = src[f"{bpath}.running_mean"].astype(np.float64)
    var = src[f"{bpath}.running_var"].astype(np.float64)
    gamma = src[f"{bpath}.weight"].astype(np.float64) if bn.get("affine", True) else np.ones(c)
    beta = src[f"{bpath}.bias"].astype(np.float64) if bn.get("affine", True) else np.zeros(c)
    b = src[f"{cpath}.bias"].astype(np.float64) if conv.get("bias", True) else np.zeros(c)
    if mean.shape != (c,):
        raise FoldError(f"{bpath} normalizes {mean.shape[0]} channels, {cpath} gives {c}")
    s = gamma / np.sqrt(var + bn["eps"])
    out[f"{cpath}.weight"] = w * s.reshape((c,) + (1,) * (w.ndim - 1))
    out[f"{cpath}.bias"] = s * (b - mean) + beta
    return {**conv, "bias": True}
