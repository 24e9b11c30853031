"""Canonical state <-> torch ``state_dict``; torch's names and layouts are the canonical ones."""
from __future__ import annotations

import os

import numpy as np
import torch

from ...errors import MissingFileError
from ...spec import ModelSpec
from ...weights import StateError, atomic_write, check_native, check_state, layout


def native_names(spec: ModelSpec) -> dict[str, str]:
    return {name: name for name in layout(spec)}


def _own(net) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}


def _assign(net, native: dict[str, np.ndarray]) -> None:
    sd = net.state_dict()
    with torch.no_grad():
        for k, v in native.items():
            sd[k].copy_(torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)))


def load_state(net, spec: ModelSpec, state) -> None:
    """Load a canonical state; validated completely (against the spec and the net's own tensors)
    before anything is written."""
    check_state(spec, state)
    native = {k: state[k] for k in layout(spec)}
    check_native(f"{spec.name} state does not fit this torch network", _own(net), native)
    _assign(net, native)


def get_state(net, spec: ModelSpec) -> dict[str, np.ndarray]:
    sd = net.state_dict()
    return {name: sd[name].detach().cpu().numpy().copy() for name in layout(spec)}


def save(net, path: str) -> None:
    sd = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save(sd, tmp))


def read(path: str) -> dict[str, np.ndarray]:
    """``torch.load(weights_only=True)``: tensors and containers only, no code from the file."""
    if not os.path.exists(path):
        raise MissingFileError(path)
    try:
        try:  # mmap: tensors are read from the file as they are used, never over-allocated
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a legacy (pre-zip) torch file cannot be mapped
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise StateError(f"{path} is not a readable torch checkpoint ({type(err).__name__}: {err})") from err
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise StateError(f"{path} does not hold a torch state_dict (a dict of tensors)")
    return {k: v.numpy() for k, v in sd.items()}


def load(net, path: str) -> None:
    """Load a ``.pth`` state_dict into ``net``: checked against the net's own tensors first,
    so a bad file leaves the net untouched. BatchNorm's ``num_batches_tracked`` counters are
    taken from the file where it has them (a resumed run saves the checkpoint it would have
    saved uninterrupted), and are not required."""
    sd = read(path)
    counters = {k: v for k, v in sd.items() if k.endswith("num_batches_tracked")}
    sd = {k: v for k, v in sd.items() if k not in counters}
    check_native(f"{path} does not fit this network", _own(net), sd)
    _assign(net, sd)
    own = net.state_dict()
    with torch.no_grad():
        for k, v in counters.items():
            if k in own and tuple(own[k].shape) == tuple(np.shape(v)):
                own[k].copy_(torch.from_numpy(np.asarray(v, dtype=np.int64)))
