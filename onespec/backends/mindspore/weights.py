"""Canonical state <-> MindSpore parameters: by tensor role, ``gamma``/``beta`` and
``moving_mean``/``moving_variance`` (BatchNorm, GroupNorm, LayerNorm alike); conv, transposed
conv and Dense weights keep the canonical layout."""
from __future__ import annotations

import os

import numpy as np
import mindspore as ms

from ...errors import MissingFileError
from ...spec import ModelSpec
from ...weights import MAX_UNCHECKED_BYTES, StateError, atomic_write, check_native, check_state, checked, native_layout
from . import FRAMEWORK

ROLES = FRAMEWORK.roles


def native_names(spec: ModelSpec) -> dict[str, str]:
    return {k: n for k, (n, _) in native_layout(spec, ROLES).items()}


def _own(net) -> dict[str, tuple]:
    return {k: tuple(p.shape) for k, p in net.parameters_and_names()}


def _assign(net, native: dict[str, np.ndarray]) -> None:
    params = dict(net.parameters_and_names())
    for k, v in native.items():
        params[k].set_data(ms.Tensor(np.ascontiguousarray(v, dtype=np.float32)))


def load_state(net, spec: ModelSpec, state) -> None:
    check_state(spec, state)
    native = {n: np.asarray(state[k], np.float32) for k, n in native_names(spec).items()}
    check_native(f"{spec.name} state does not fit this mindspore network", _own(net), native)
    _assign(net, native)


def get_state(net, spec: ModelSpec) -> dict[str, np.ndarray]:
    params = dict(net.parameters_and_names())
    return {k: params[n].asnumpy().copy() for k, n in native_names(spec).items()}


def save(net, path: str) -> None:
    # MindSpore appends ".ckpt" to any name not ending in it (".CKPT", ".bin" included): the
    # temporary file always ends in ".ckpt" and is renamed to the name asked for
    atomic_write(path, lambda tmp: ms.save_checkpoint(net, tmp), suffix=".ckpt")


def read(path: str) -> dict[str, np.ndarray]:
    """A ``.ckpt`` (protobuf: tensors stored as raw bytes, nothing compressed), refused above the
    checkpoint size budget before MindSpore parses it; NaN/inf refused."""
    if not os.path.exists(path):
        raise MissingFileError(path)
    if os.path.getsize(path) > MAX_UNCHECKED_BYTES:
        raise StateError(f"{path}: {os.path.getsize(path) >> 20} MiB is more than a checkpoint may be "
                         f"({MAX_UNCHECKED_BYTES >> 30} GiB)")
    try:
        if path.endswith(".ckpt"):
            ck = ms.load_checkpoint(path)
        else:  # MindSpore reads only names ending in ".ckpt": read through a link that does
            import tempfile
            with tempfile.TemporaryDirectory() as d:
                link = os.path.join(d, "checkpoint.ckpt")
                os.symlink(os.path.abspath(path), link)
                ck = ms.load_checkpoint(link)
    except Exception as err:
        raise StateError(f"{path} is not a readable MindSpore .ckpt ({type(err).__name__}: {err})") from err
    return dict(checked({k: v.asnumpy() for k, v in ck.items()}, path))


def load(net, path: str) -> None:
    ck = read(path)
    check_native(f"{path} does not fit this network", _own(net), ck)
    _assign(net, ck)
