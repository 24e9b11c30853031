"""MindSpore around onespec's networks: numerics switches, the environment a report records,
training sessions and ``mindspore.communication``, and any MindSpore network's tensors."""
from __future__ import annotations

import numpy as np
import mindspore as ms

from ...errors import OnespecError


def apply_numerics(tf32: bool | None, deterministic: bool | None) -> None:
    if deterministic is not None:
        ms.set_deterministic(deterministic)


def numerics_environment() -> dict:
    return {"version": ms.__version__, "device": ms.get_context("device_target"),
            "deterministic": ms.get_deterministic() if hasattr(ms, "get_deterministic") else
            ms.get_context("deterministic"), "mode": ms.get_context("mode")}


def foreign_state(net) -> dict[str, np.ndarray]:
    # a parameter's own name: what a checkpoint of the network holds (a cell registered twice,
    # MindCV's squeezenet final_conv, has another path than its parameters' names)
    return {p.name: p.asnumpy() for _, p in net.parameters_and_names()}


def session(net, spec, trainable, frozen_paths, precision: str = "float32"):
    from .train import Session
    if precision != "float32":
        raise OnespecError(f"mindspore trains in float32 only, not {precision!r}")
    return Session(net, spec, trainable, frozen_paths)


def dist_start() -> tuple[int, int]:
    from mindspore.communication import get_group_size, get_rank, init
    ms.set_context(mode=ms.PYNATIVE_MODE)
    init()
    return get_rank(), get_group_size()


def dist_end() -> None:
    """msrun's workers leave with the process; nothing to wait for."""
