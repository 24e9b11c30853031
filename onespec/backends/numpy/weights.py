"""Canonical state <-> numpy network: canonical names and layouts (nothing to translate);
values held in float64, handed back in the dtype they were loaded with."""
from __future__ import annotations

import numpy as np

from ...spec import ModelSpec
from ...weights import check_native, check_state, layout, load_state as read_npz, save_state


def native_names(spec: ModelSpec) -> dict[str, str]:
    return {name: name for name in layout(spec)}


def _tensors(net) -> dict:
    out = {}
    for path, m in net.named_modules():
        for k in m.params:
            out[f"{path}.{k}"] = (m, k)
    return out


def _assign(net, what: str, state) -> None:
    """Check ``state`` against the net's own tensors, then hold it in float64 (remembering each
    tensor's dtype for ``get_state``)."""
    own = _tensors(net)
    check_native(what, {k: m.params[t].shape for k, (m, t) in own.items()}, state)
    net.dtypes = {}
    for k, (m, t) in own.items():
        m.params[t] = np.asarray(state[k], dtype=np.float64).copy()
        net.dtypes[k] = np.asarray(state[k]).dtype


def load_state(net, spec: ModelSpec, state) -> None:
    check_state(spec, state)
    _assign(net, "state does not fit this numpy network", state)


def get_state(net, spec: ModelSpec) -> dict[str, np.ndarray]:
    dtypes = getattr(net, "dtypes", {})
    return {k: m.params[t].astype(dtypes.get(k, np.float32)) for k, (m, t) in _tensors(net).items()}


def save(net, path: str) -> None:
    save_state({k: m.params[t].astype(np.float32) for k, (m, t) in _tensors(net).items()}, path)


def read(path: str) -> dict[str, np.ndarray]:
    return read_npz(path)


def load(net, path: str) -> None:
    _assign(net, f"{path} does not fit this network", read(path))
