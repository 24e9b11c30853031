"""``onespec export`` from a Paddle network: the inference model of ``paddle.jit.save``
(``OUT.json`` or ``OUT.pdmodel``, and ``OUT.pdiparams``), run by ``paddle.inference``, and ONNX
through ``paddle2onnx``, both with a dynamic batch."""
from __future__ import annotations

import os

import numpy as np
import paddle


def make_artifact(fmt: str, net, input_shape: tuple, base: str, batch: int, opset: int) -> tuple[list[str], int | None]:
    """Write ``net`` as ``fmt`` at ``base`` (``paddle``: a path prefix); returns (files, opset)."""
    net.eval()
    spec_in = [paddle.static.InputSpec([None, *input_shape], "float32", "input")]
    prefix = base if fmt == "paddle" else base + ".inference"
    paddle.jit.save(net, prefix, input_spec=spec_in)
    program = prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")
    if fmt == "paddle":
        return [program, prefix + ".pdiparams"], None
    import paddle2onnx
    # onnxoptimizer, not the default Polygraphy (absent here, and it would pip-install its deps)
    paddle2onnx.export(program, prefix + ".pdiparams", base, opset_version=opset, enable_onnx_checker=True,
                       enable_optimize=True, optimize_tool="onnxoptimizer", verbose=False)
    for leftover in os.listdir(os.path.dirname(base)):  # the intermediate inference model
        if leftover.startswith(os.path.basename(prefix)):
            os.remove(os.path.join(os.path.dirname(base), leftover))
    return [base], opset


def run_artifact(fmt: str, files: list[str], x: np.ndarray) -> np.ndarray:
    """The artifact, loaded by its own runtime, on ``x``."""
    if fmt == "onnx-paddle":
        from ...export import run_onnx
        return run_onnx(files[0], x)
    import paddle.inference as pi
    cfg = pi.Config(files[0], files[1])
    cfg.disable_gpu()
    pred = pi.create_predictor(cfg)
    h = pred.get_input_handle(pred.get_input_names()[0])
    h.reshape(x.shape)
    h.copy_from_cpu(np.ascontiguousarray(x))
    pred.run()
    return pred.get_output_handle(pred.get_output_names()[0]).copy_to_cpu()
