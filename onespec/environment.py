"""The numerics environment: what a report must record for its figures to be reproducible, and
the switches that change float results on GPU.

``describe`` records, per framework, its version, threads, device and determinism / TF32 flags
(torch: ``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``,
``cudnn.deterministic``, ``cudnn.benchmark``, ``torch.are_deterministic_algorithms_enabled()``;
Paddle: ``FLAGS_cudnn_deterministic``, ``FLAGS_embedding_deterministic``; MindSpore: the
``deterministic`` context). ``ONESPEC_TF32`` and ``ONESPEC_DETERMINISTIC`` (``0``/``1``, set by the
CLI's ``--tf32`` and ``--deterministic``) are applied to each framework when onespec loads it, in
this process and in every child it starts, so align's and conformance's workers share them.
onespec computes on the CPU, where neither switch changes a result; they are recorded so that a
report from a GPU run says how it was made.
"""
from __future__ import annotations

import os
import platform
import sys

import numpy as np

TF32, DETERMINISTIC = "ONESPEC_TF32", "ONESPEC_DETERMINISTIC"


def _flag(var: str) -> bool | None:
    v = os.environ.get(var)
    return None if v in (None, "") else v not in ("0", "off", "false")


def set_flags(tf32: bool | None = None, deterministic: bool | None = None) -> None:
    """Ask for TF32 on/off and deterministic kernels in every framework onespec loads from now on
    (here and in child processes); frameworks already loaded get them at once."""
    for var, v in ((TF32, tf32), (DETERMINISTIC, deterministic)):
        if v is not None:
            os.environ[var] = "1" if v else "0"
    if deterministic is not None:  # Paddle reads these at import (a CPU build refuses set_flags for them)
        os.environ["FLAGS_cudnn_deterministic"] = os.environ["FLAGS_embedding_deterministic"] = \
            "1" if deterministic else "0"
    for name in ("torch", "paddle", "mindspore"):
        if name in sys.modules:
            apply(name)


def apply(framework: str) -> None:
    """Apply ``ONESPEC_TF32`` / ``ONESPEC_DETERMINISTIC`` to ``framework`` (already imported)."""
    tf32, det = _flag(TF32), _flag(DETERMINISTIC)
    if framework == "torch":
        import torch
        if tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        if det is not None:
            torch.backends.cudnn.deterministic = det
            torch.backends.cudnn.benchmark = not det
            torch.use_deterministic_algorithms(det, warn_only=True)
    elif framework == "paddle" and det is not None:
        import paddle
        try:
            paddle.set_flags({"FLAGS_cudnn_deterministic": det})
        except ValueError:  # a CPU build fixes it at import, from the environment variable set_flags sets
            pass
    elif framework == "mindspore" and det is not None:
        import mindspore as ms
        ms.set_deterministic(det)


def describe(frameworks=()) -> dict:
    """{"python", "numpy", "cpu_count", "omp_num_threads", "requested": {tf32, deterministic},
    framework: {version, threads, device, flags...}} for each of ``frameworks`` (imported here)."""
    env = {"python": platform.python_version(), "numpy": np.__version__, "cpu_count": os.cpu_count(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "requested": {"tf32": _flag(TF32), "deterministic": _flag(DETERMINISTIC)}}
    for fw in frameworks:
        env[fw] = _framework(fw)
    return env


def _framework(fw: str) -> dict:
    if fw == "numpy":
        return {"version": np.__version__, "device": "cpu", "dtype": "float64"}
    if fw == "torch":
        import torch
        return {"version": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu",
                "cuda_available": torch.cuda.is_available(),
                "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32,
                "cudnn_deterministic": torch.backends.cudnn.deterministic,
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
                "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}
    if fw == "paddle":
        import paddle
        try:
            flags = paddle.get_flags(["FLAGS_cudnn_deterministic", "FLAGS_embedding_deterministic"])
        except ValueError:  # not in a CPU build's flag table
            flags = {k: os.environ.get(k) for k in ("FLAGS_cudnn_deterministic", "FLAGS_embedding_deterministic")}
        return {"version": paddle.__version__, "device": paddle.device.get_device(),
                "cuda_available": paddle.device.is_compiled_with_cuda(), **flags}
    import mindspore as ms
    return {"version": ms.__version__, "device": ms.get_context("device_target"),
            "deterministic": ms.get_deterministic() if hasattr(ms, "get_deterministic") else
            ms.get_context("deterministic"), "mode": ms.get_context("mode")}
