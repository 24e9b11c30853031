"""Canonical state <-> MindSpore parameters: BN gamma/beta/moving_mean/moving_variance;
conv and Dense weights keep the canonical [out, in, ...] layout."""
from __future__ import annotations

import os

import numpy as np
import mindspore as ms

from ...spec import ModelSpec
from ...weights import StateError, atomic_write, check_native, check_state, layout

_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}


def native_names(spec: ModelSpec) -> dict[str, str]:
    out = {}
    for name, t in layout(spec).items():
        path, leaf = name.rsplit(".", 1)
        out[name] = f"{path}.{_BN[leaf]}" if t.op == "batchnorm" else name
    return out


def to_native(arr: np.ndarray, role: str, op: str) -> np.ndarray:
    return arr


def _own(net) -> dict[str, tuple]:
    return {k: tuple(p.shape) for k, p in net.parameters_and_names()}


def _assign(net, native: dict[str, np.ndarray]) -> None:
    params = dict(net.parameters_and_names())
    for k, v in native.items():
        params[k].set_data(ms.Tensor(np.ascontiguousarray(v, dtype=np.float32)))


def load_state(net, spec: ModelSpec, state) -> None:
    check_state(spec, state)
    names = native_names(spec)
    native = {names[k]: np.asarray(state[k], np.float32) for k in layout(spec)}
    check_native("converted state does not fit this mindspore network", _own(net), native)
    _assign(net, native)


def get_state(net, spec: ModelSpec) -> dict[str, np.ndarray]:
    params = dict(net.parameters_and_names())
    names = native_names(spec)
    return {k: params[names[k]].asnumpy().copy() for k in layout(spec)}


def save(net, path: str) -> None:
    # MindSpore appends ".ckpt" to names without it; the temp name keeps the suffix
    atomic_write(path, lambda tmp: ms.save_checkpoint(net, tmp))


def read(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    try:
        ck = ms.load_checkpoint(path)
    except Exception as err:
        raise StateError(f"{path} is not a readable MindSpore .ckpt ({type(err).__name__}: {err})") from err
    return {k: v.asnumpy() for k, v in ck.items()}


def load(net, path: str) -> None:
    ck = read(path)
    check_native(f"{path} does not fit this network", _own(net), ck)
    _assign(net, ck)
