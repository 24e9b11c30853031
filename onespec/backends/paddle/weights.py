"""Canonical state <-> Paddle ``state_dict``: running statistics are ``_mean``/``_variance``
(by tensor role, whatever the op) and the ops in ``emit.TRANSPOSED`` (Linear) store their weight
[in, out], the transpose of the canonical [out, in].

``.pdparams`` files are pickles; ``paddle.load`` would run any code a crafted file carries, so
``read`` evaluates them with onespec's budgeted unpickler (``onespec.readers``) that admits numpy
arrays, dtypes and dicts only.
"""
from __future__ import annotations

import os

import numpy as np
import paddle

from ...errors import MissingFileError
from ...readers import ReadError, read_pickle
from ...spec import ModelSpec
from ...weights import MAX_UNCHECKED_BYTES, StateError, atomic_write, check_native, check_state, checked, native_layout
from . import FRAMEWORK
from .emit import TRANSPOSED

ROLES = FRAMEWORK.roles


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


def read(path: str) -> dict[str, np.ndarray]:
    if not os.path.exists(path):
        raise MissingFileError(path)
    try:
        sd = read_pickle(path, MAX_UNCHECKED_BYTES, ".pdparams checkpoint")
    except ReadError as err:
        raise StateError(str(err)) from None
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
    return dict(checked(out, path))


def load(net, path: str) -> None:
    sd = read(path)
    check_native(f"{path} does not fit this network", _own(net), sd)
    _assign(net, {k: np.asarray(v, np.float32) for k, v in sd.items()})
