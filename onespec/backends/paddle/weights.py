"""Canonical state <-> Paddle ``state_dict``: running statistics are ``_mean``/``_variance``
(by tensor role, whatever the op) and the ops in ``emit.TRANSPOSED`` (Linear) store their weight
[in, out], the transpose of the canonical [out, in].

``.pdparams`` files are pickles; ``paddle.load`` would run any code a crafted file carries, so
``read`` unpickles them with a restricted unpickler that admits numpy arrays, dtypes and dicts only.
"""
from __future__ import annotations

import collections
import os
import pickle

import numpy as np
import paddle

from ...errors import MissingFileError
from ...spec import ModelSpec
from ...weights import StateError, atomic_write, check_native, check_state, native_layout
from .emit import TRANSPOSED

ROLES = {"running_mean": "_mean", "running_var": "_variance"}


def file_layout(spec):
    """canonical name -> (onespec's name in a paddle file, stored transposed)."""
    return native_layout(spec, ROLES, TRANSPOSED)


def native_names(spec: ModelSpec) -> dict[str, str]:
    return {k: n for k, (n, _) in file_layout(spec).items()}


def _own(net) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def load_state(net, spec: ModelSpec, state) -> None:
    check_state(spec, state)
    native = {n: np.ascontiguousarray(np.asarray(state[k], np.float32).T if t else np.asarray(state[k], np.float32))
              for k, (n, t) in file_layout(spec).items()}
    check_native(f"{spec.name} state does not fit this paddle network", _own(net), native)
    _assign(net, native)


def _assign(net, native) -> None:
    net.set_state_dict({k: paddle.to_tensor(np.ascontiguousarray(v, np.float32)) for k, v in native.items()})


def get_state(net, spec: ModelSpec) -> dict[str, np.ndarray]:
    sd = net.state_dict()
    out = {}
    for k, (n, t) in file_layout(spec).items():
        v = sd[n].numpy()
        out[k] = np.ascontiguousarray(v.T if t else v).copy()
    return out


def save(net, path: str) -> None:
    sd = net.state_dict()
    atomic_write(path, lambda tmp: paddle.save(sd, tmp))


_SAFE = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
         ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _SAFE:
            raise StateError(f"refusing to load {module}.{name}: a .pdparams file may hold only arrays and dicts")
        if module.startswith("numpy"):
            import numpy.core.multiarray as ma
            return {"_reconstruct": ma._reconstruct, "ndarray": np.ndarray, "dtype": np.dtype}[name]
        return collections.OrderedDict


def read(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise MissingFileError(path)
    try:
        with open(path, "rb") as f:
            sd = _Unpickler(f).load()
    except StateError as err:
        raise StateError(f"{path}: {err}") from None
    except Exception as err:
        raise StateError(f"{path} is not a readable .pdparams file ({type(err).__name__}: {err})") from err
    if not isinstance(sd, dict):
        raise StateError(f"{path} does not hold a paddle state_dict")
    out = {}
    for k, v in sd.items():
        if k == "StructuredToParameterName@@":  # paddle's bookkeeping: structured -> static names
            continue
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], np.ndarray):
            v = v[1]  # older paddle.save: (static name, array)
        if not isinstance(v, np.ndarray) or v.dtype.hasobject:
            raise StateError(f"{path}: entry {k} is a {type(v).__name__}, not a tensor")
        out[str(k)] = v
    return out


def load(net, path: str) -> None:
    sd = read(path)
    check_native(f"{path} does not fit this network", _own(net), sd)
    _assign(net, {k: np.asarray(v, np.float32) for k, v in sd.items()})
