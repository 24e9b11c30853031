"""The numpy reference around its networks: what a report records, and the refusals of what a
float64 evaluator without autograd cannot do (train, join a process group, be benchmarked)."""
from __future__ import annotations

import numpy as np

from ...errors import OnespecError


def apply_numerics(tf32: bool | None, deterministic: bool | None) -> None:
    """float64 numpy on the CPU: deterministic, no TF32."""


def numerics_environment() -> dict:
    return {"version": np.__version__, "device": "cpu", "dtype": "float64"}


def foreign_state(net) -> dict[str, np.ndarray]:
    return {f"{path}.{k}": v for path, m in net.named_modules() for k, v in m.params.items()}


def session(net, spec, trainable, frozen_paths, precision: str = "float32"):
    from .train import Session
    if precision != "float32":
        raise OnespecError(f"numpy trains in float32 only, not {precision!r}")
    return Session(net, spec, trainable, frozen_paths)


def dist_start() -> tuple[int, int]:
    raise OnespecError("the numpy backend is the float64 reference and trains nothing: "
                       "train with --backend torch, paddle or mindspore")


def dist_end() -> None:
    """Never joined a group (``dist_start`` refuses)."""
