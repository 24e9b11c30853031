"""Paddle around onespec's networks: numerics switches, the environment a report records,
training sessions and ``paddle.distributed``, and any Paddle network's tensors."""
from __future__ import annotations

import os

import numpy as np
import paddle

from ...errors import OnespecError

_DETERMINISTIC = ("FLAGS_cudnn_deterministic", "FLAGS_embedding_deterministic")


def apply_numerics(tf32: bool | None, deterministic: bool | None) -> None:
    if deterministic is None:
        return
    try:
        paddle.set_flags({"FLAGS_cudnn_deterministic": deterministic})
    except ValueError:  # a CPU build fixes it at import, from the variable FRAMEWORK.deterministic_env sets
        pass


def numerics_environment() -> dict:
    try:
        flags = paddle.get_flags(list(_DETERMINISTIC))
    except ValueError:  # not in a CPU build's flag table
        flags = {k: os.environ.get(k) for k in _DETERMINISTIC}
    return {"version": paddle.__version__, "device": paddle.device.get_device(),
            "cuda_available": paddle.device.is_compiled_with_cuda(), **flags}


def foreign_state(net) -> dict[str, np.ndarray]:
    return {k: np.asarray(v.numpy()) for k, v in net.state_dict().items()}


def session(net, spec, trainable, frozen_paths, precision: str = "float32"):
    from .train import Session
    if precision != "float32":
        raise OnespecError(f"paddle trains in float32 only, not {precision!r}")
    return Session(net, spec, trainable, frozen_paths)


def dist_start() -> tuple[int, int]:
    import paddle.distributed as dist
    dist.init_parallel_env()
    return dist.get_rank(), dist.get_world_size()


def dist_end() -> None:
    import paddle.distributed as dist
    dist.barrier()
