"""torch around onespec's networks: numerics switches, the environment a report records,
training sessions and ``torch.distributed``, and any torch network's tensors."""
from __future__ import annotations

import numpy as np
import torch

from ...errors import OnespecError


def apply_numerics(tf32: bool | None, deterministic: bool | None) -> None:
    if tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    if deterministic is not None:
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
        torch.use_deterministic_algorithms(deterministic, warn_only=True)


def numerics_environment() -> dict:
    return {"version": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu",
            "cuda_available": torch.cuda.is_available(),
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


def foreign_state(net) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in net.state_dict().items()}


def session(net, spec, trainable, frozen_paths, precision: str = "float32"):
    from .train import PRECISIONS, Session
    if precision not in PRECISIONS:
        raise OnespecError(f"torch trains in {' or '.join(PRECISIONS)}, not {precision!r}")
    return Session(net, spec, trainable, frozen_paths, precision=precision)


def dist_start() -> tuple[int, int]:
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def dist_end() -> None:
    """A torch rank exiting while gloo's threads run aborts with "terminate called without an
    active exception": every rank waits for the others, then leaves the group."""
    import torch.distributed as dist
    dist.barrier()
    dist.destroy_process_group()
