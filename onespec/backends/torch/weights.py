"""Canonical state <-> torch ``state_dict``; torch's names and layouts are the canonical ones."""
from __future__ import annotations

import os

import numpy as np
import torch

from ...errors import MissingFileError
from ...readers import OPAQUE, Budget, Global, MiB, ReadError, scan_only, unpickle, zip_members
from ...spec import ModelSpec
from ...weights import MAX_UNCHECKED_BYTES, StateError, atomic_write, check_native, check_state, checked, layout

# what a state_dict's data.pkl names: tensors rebuilt over typed storages, in an OrderedDict
_ELEMENT = {"Float": 4, "Double": 8, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
            "Byte": 1, "Bool": 1}
_GLOBALS = scan_only([("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"),
                      ("torch._utils", "_rebuild_parameter"), ("collections", "OrderedDict"), ("torch", "Size")]
                     + [("torch", f"{t}Storage") for t in _ELEMENT])


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


def _vet(path: str) -> None:
    """Before ``torch.load``: nothing in the file runs code or allocates more than the file holds.
    ``data.pkl`` (or a legacy file's pickles) may name only a state_dict's globals: torch's own
    weights-only unpickler admits ``_codecs.encode``, whose chained codecs inflate without bound.
    A zip checkpoint's members must be stored (nothing inflates beyond the file's size)."""
    import zipfile

    size = os.path.getsize(path)
    if size > MAX_UNCHECKED_BYTES:
        raise ReadError(f"{path}: {size >> 20} MiB is more than a checkpoint may be ({MAX_UNCHECKED_BYTES >> 30} GiB)")
    if not zipfile.is_zipfile(path):
        _vet_legacy(path, size)
        return
    infos = zip_members(path, Budget(size + MiB, path), stored_only=True)
    pkl = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
    if len(pkl) != 1:
        raise ReadError(f"{path}: expected one data.pkl in the checkpoint, found {len(pkl)}")
    with zipfile.ZipFile(path) as zf:
        data = zf.read(pkl[0])
    unpickle(data, _GLOBALS, Budget(2 * len(data) + MiB, path), persistent=lambda pid: OPAQUE)


def _vet_legacy(path: str, size: int) -> None:
    """A legacy (pre-1.6) torch file: pickles (magic number, protocol, system info, the
    state_dict, the storage keys) then the raw storages. torch allocates every storage at the
    size its persistent id declares before reading it: the declared sizes must fit in the bytes
    that follow the pickles."""
    import mmap

    storages = {}

    def storage(pid):
        if (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[1], Global)
                and type(pid[4]) is int and pid[4] >= 0):
            kind = pid[1].key[1][:-len("Storage")]
            storages[str(pid[2])] = max(storages.get(str(pid[2]), 0), pid[4] * _ELEMENT[kind])
            return OPAQUE
        raise ReadError(f"{path}: persistent id {str(pid)[:80]} is not a storage")

    budget = Budget(2 * size + MiB, path)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if unpickle(m, {}, budget) != 0x1950A86A20F9469CFC6C:
            raise ReadError(f"{path} is not a torch checkpoint (neither a zip nor a legacy file)")
        unpickle(m, {}, budget)                                   # protocol version
        unpickle(m, {}, budget)                                   # system info
        unpickle(m, _GLOBALS, budget, persistent=storage)         # the state_dict
        unpickle(m, {}, budget)                                   # storage keys
        left = size - m.tell()
    declared = sum(storages.values())
    if declared > left:
        raise ReadError(f"{path}: storages declare {declared} bytes but the file holds {left} after its pickles")


def read(path: str) -> dict[str, np.ndarray]:
    """``torch.load(weights_only=True)`` of a vetted file (:func:`_vet`): tensors and containers
    only, no code from the file, allocating no more than the file holds."""
    if not os.path.exists(path):
        raise MissingFileError(path)
    try:
        _vet(path)
        import zipfile  # mmap: storages are read from the file as they are used (a zip file only)
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except ReadError as err:
        raise StateError(str(err)) from None
    except Exception as err:
        raise StateError(f"{path} is not a readable torch checkpoint ({type(err).__name__}: {err})") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise StateError(f"{path} does not hold a torch state_dict (a dict of tensors)")
    out = {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy() for k, v in sd.items()}
    return dict(checked(out, path))


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
