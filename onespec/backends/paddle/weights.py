"""Canonical state <-> Paddle ``state_dict``: BN running stats are ``_mean``/``_variance`` and
Linear weights are stored [in, out] (the transpose of the canonical [out, in])."""
from __future__ import annotations

import os

import numpy as np
import paddle

from ...spec import ModelSpec
from ...weights import StateError, atomic_write, check_native, check_state, layout

_BN = {"running_mean": "_mean", "running_var": "_variance"}


def native_names(spec: ModelSpec) -> dict[str, str]:
    out = {}
    for name, t in layout(spec).items():
        path, leaf = name.rsplit(".", 1)
        out[name] = f"{path}.{_BN.get(leaf, leaf)}"
    return out


def to_native(arr: np.ndarray, role: str, op: str) -> np.ndarray:
    return arr.T if (op == "linear" and role == "weight") else arr


from_native = to_native  # a transpose is its own inverse


def _own(net) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def load_state(net, spec: ModelSpec, state) -> None:
    check_state(spec, state)
    lay, names = layout(spec), native_names(spec)
    native = {names[k]: np.ascontiguousarray(to_native(np.asarray(state[k], np.float32), t.role, t.op))
              for k, t in lay.items()}
    check_native("converted state does not fit this paddle network", _own(net), native)
    net.set_state_dict({k: paddle.to_tensor(v) for k, v in native.items()})


def get_state(net, spec: ModelSpec) -> dict[str, np.ndarray]:
    sd = net.state_dict()
    names = native_names(spec)
    return {k: np.ascontiguousarray(from_native(sd[names[k]].numpy(), t.role, t.op)).copy()
            for k, t in layout(spec).items()}


def save(net, path: str) -> None:
    sd = net.state_dict()
    atomic_write(path, lambda tmp: paddle.save(sd, tmp))


def read(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    try:
        sd = paddle.load(path)
    except Exception as err:
        raise StateError(f"{path} is not a readable .pdparams file ({type(err).__name__}: {err})") from err
    if not isinstance(sd, dict):
        raise StateError(f"{path} does not hold a paddle state_dict")
    out = {}
    for k, v in sd.items():
        if isinstance(v, paddle.Tensor):
            out[k] = v.numpy()
        elif isinstance(v, np.ndarray):
            out[k] = v
        else:
            raise StateError(f"{path}: entry {k} is a {type(v).__name__}, not a tensor")
    return out


def load(net, path: str) -> None:
    sd = read(path)
    check_native(f"{path} does not fit this network", _own(net), sd)
    net.set_state_dict({k: paddle.to_tensor(np.asarray(v, np.float32)) for k, v in sd.items()})
