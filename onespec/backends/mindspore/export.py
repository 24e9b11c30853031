"""``onespec export`` from a MindSpore network: MindIR (``mindspore.export`` from
``Tensor(shape=[None, ...])``: a dynamic batch), run by ``mindspore.load`` + ``nn.GraphCell``."""
from __future__ import annotations

import os

import mindspore as ms
import numpy as np
from mindspore import nn


def make_artifact(fmt: str, net, input_shape: tuple, base: str, batch: int, opset: int) -> tuple[list[str], int | None]:
    """Write ``net`` as a MindIR at ``base`` (``.mindir`` appended when missing); returns (files, None)."""
    net.set_train(False)
    stem = base[:-len(".mindir")] if base.endswith(".mindir") else base
    ms.export(net, ms.Tensor(shape=[None, *input_shape], dtype=ms.float32), file_name=stem, file_format="MINDIR")
    made = stem + ".mindir"
    os.chmod(made, 0o644)  # MindSpore writes it read-only for its owner
    return [made], None


def run_artifact(fmt: str, files: list[str], x: np.ndarray) -> np.ndarray:
    """The MindIR, loaded and run as a graph, on ``x``."""
    return nn.GraphCell(ms.load(files[0]))(ms.Tensor(x)).asnumpy()
