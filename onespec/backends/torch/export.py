"""``onespec export`` from a torch network: ONNX (torch's dynamo exporter) and an
``ExportedProgram`` (``torch.export``, saved as ``.pt2``), both with a dynamic batch."""
from __future__ import annotations

import warnings

import numpy as np
import torch


def make_artifact(fmt: str, net, input_shape: tuple, base: str, batch: int, opset: int) -> tuple[list[str], int | None]:
    """Write ``net`` as ``fmt`` at ``base``, traced with a batch of ``batch``; returns (files, opset)."""
    net.eval()
    x = torch.zeros((batch, *input_shape), dtype=torch.float32)
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},)
    if fmt == "torch-export":
        torch.export.save(torch.export.export(net, (x,), dynamic_shapes=dyn), base)
        return [base], None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), base, input_names=["input"], output_names=["output"], opset_version=opset,
                          dynamo=True, external_data=False, dynamic_shapes=dyn, optimize=True, verbose=False)
    return [base], opset


def run_artifact(fmt: str, files: list[str], x: np.ndarray) -> np.ndarray:
    """The artifact, loaded by its own runtime, on ``x``."""
    if fmt == "onnx":
        from ...export import run_onnx
        return run_onnx(files[0], x)
    with torch.no_grad():
        return torch.export.load(files[0]).module()(torch.from_numpy(x)).numpy()
