"""Canonical, framework-neutral weights.

A *state* is a ``dict[str, np.ndarray]`` keyed ``"<node path>.<tensor>"`` in one documented
layout (torch's names and layouts, which are also the papers'):

| op | tensors |
|---|---|
| conv | ``weight`` [out, in/groups, *kernel] (OIHW / OIDHW), ``bias`` [out] |
| linear | ``weight`` [out, in], ``bias`` [out] |
| batchnorm | ``weight`` (gamma), ``bias`` (beta), ``running_mean``, ``running_var`` [C] |

Each backend converts to and from its own layout in exactly one place
(``onespec.backends.<fw>.weights``). States are saved as ``.npz`` (numpy only), written atomically.
"""
from __future__ import annotations

import os
import tempfile
import zlib
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .errors import OnespecError
from .spec import ModelSpec, trace


class StateError(OnespecError, ValueError):
    """A state does not fit a spec: lists missing, unexpected and wrongly shaped tensors."""

    def __init__(self, what: str, missing=(), unexpected=(), mismatched=(), dtype=()):
        self.missing, self.unexpected = sorted(missing), sorted(unexpected)
        self.mismatched, self.dtype = sorted(mismatched), sorted(dtype)
        parts = [what]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("wrong shape", self.mismatched), ("wrong dtype", self.dtype)):
            if items:
                shown = ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
                parts.append(f"{label}: {shown}")
        super().__init__("; ".join(parts))


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    role: str        # weight | bias | gamma | beta | running_mean | running_var
    op: str          # conv | linear | batchnorm
    trainable: bool


def layout(spec: ModelSpec) -> dict[str, TensorSpec]:
    """Every tensor of the spec's canonical state, in graph order."""
    out: dict[str, TensorSpec] = {}
    for r in trace(spec):
        n = r.node
        if r.op == "conv":
            k = n.kernel if isinstance(n.kernel, tuple) else (n.kernel,) * (len(r.in_shape) - 1)
            out[f"{r.path}.weight"] = TensorSpec((n.out_channels, r.in_shape[0] // n.groups, *k), "weight", "conv", True)
            if n.bias:
                out[f"{r.path}.bias"] = TensorSpec((n.out_channels,), "bias", "conv", True)
        elif r.op == "linear":
            out[f"{r.path}.weight"] = TensorSpec((n.out_features, r.in_shape[0]), "weight", "linear", True)
            if n.bias:
                out[f"{r.path}.bias"] = TensorSpec((n.out_features,), "bias", "linear", True)
        elif r.op == "batchnorm":
            c = (r.in_shape[0],)
            if n.affine:
                out[f"{r.path}.weight"] = TensorSpec(c, "gamma", "batchnorm", True)
                out[f"{r.path}.bias"] = TensorSpec(c, "beta", "batchnorm", True)
            out[f"{r.path}.running_mean"] = TensorSpec(c, "running_mean", "batchnorm", False)
            out[f"{r.path}.running_var"] = TensorSpec(c, "running_var", "batchnorm", False)
    return out


def _rng(seed: int, name: str) -> np.random.Generator:
    # per-tensor stream: a tensor's values do not depend on which other tensors exist
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def init_state(spec: ModelSpec, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Deterministic initialization independent of any framework's defaults.

    Conv/linear weights ~ N(0, 1/fan_in) (unit-variance activations), biases ~ N(0, 0.1);
    BN gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), running mean ~ N(0, 0.1), running var ~ U(0.5, 1.5),
    so that inference exercises every BN term.
    """
    state = {}
    for name, t in layout(spec).items():
        g = _rng(seed, name)
        if t.role == "weight":
            fan_in = int(np.prod(t.shape[1:]))
            v = g.standard_normal(t.shape) / np.sqrt(fan_in)
        elif t.role in ("gamma", "running_var"):
            v = g.uniform(0.5, 1.5, t.shape)
        else:
            v = 0.1 * g.standard_normal(t.shape)
        state[name] = v.astype(dtype)
    return state


def check_state(spec: ModelSpec, state: Mapping[str, np.ndarray], what: str = "state") -> None:
    """Raise :class:`StateError` unless ``state`` has exactly the spec's tensors, shapes and a float dtype."""
    want = layout(spec)
    missing = set(want) - set(state)
    unexpected = set(state) - set(want)
    mismatched = [f"{k} {tuple(np.shape(state[k]))} != {want[k].shape}" for k in set(want) & set(state)
                  if tuple(np.shape(state[k])) != want[k].shape]
    bad_dtype = [f"{k} ({np.asarray(state[k]).dtype})" for k in set(want) & set(state)
                 if np.asarray(state[k]).dtype.kind != "f"]
    if missing or unexpected or mismatched or bad_dtype:
        raise StateError(f"{what} does not fit {spec.name}", missing, unexpected, mismatched, bad_dtype)


def check_native(what: str, expected: Mapping[str, tuple], got: Mapping[str, np.ndarray]) -> None:
    """Compare a native checkpoint's tensors with a network's own (names, shapes, float dtype)."""
    missing = set(expected) - set(got)
    unexpected = set(got) - set(expected)
    common = set(expected) & set(got)
    mismatched = [f"{k} {tuple(np.shape(got[k]))} != {tuple(expected[k])}" for k in common
                  if tuple(np.shape(got[k])) != tuple(expected[k])]
    bad_dtype = [f"{k} ({np.asarray(got[k]).dtype})" for k in common if np.asarray(got[k]).dtype.kind != "f"]
    if missing or unexpected or mismatched or bad_dtype:
        raise StateError(what, missing, unexpected, mismatched, bad_dtype)


def atomic_write(path: str, write) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a half-written file."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".onespec-", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_state(state: Mapping[str, np.ndarray], path: str) -> None:
    """Save a canonical state as ``.npz`` (atomically)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in state.items()})
    atomic_write(path, write)


def load_state(path: str) -> dict[str, np.ndarray]:
    """Load a canonical ``.npz`` state; a truncated or foreign file raises :class:`StateError`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except Exception as err:
        raise StateError(f"{path} is not a readable onespec .npz state ({type(err).__name__}: {err})") from err
