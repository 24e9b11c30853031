"""``onespec export``: a deployable artifact, checked by running it in its own runtime.

| format | made by | run by (the check) |
|---|---|---|
| ``onnx`` | ``torch.onnx.export`` (dynamo exporter) of the torch build | onnxruntime (CPU) |
| ``onnx-paddle`` | ``paddle.jit.save`` then ``paddle2onnx.export`` | onnxruntime (CPU) |
| ``mindir`` | ``mindspore.export(..., file_format="MINDIR")`` | ``mindspore.load`` + ``nn.GraphCell`` |
| ``paddle`` | ``paddle.jit.save`` (inference program + ``.pdiparams``) | ``paddle.inference`` predictor |
| ``torch-export`` | ``torch.export.export`` + ``torch.export.save`` (``.pt2``) | ``torch.export.load`` |

The batch dimension is dynamic in every format (MindIR: exported from a ``Tensor(shape=[None,
...])``), and the check runs two batch sizes. The
artifact's output is compared with the float64 numpy evaluator's on a seeded batch (max relative
error <= 1e-4, as conformance); ``--no-check`` skips it. With ``fold`` the BN-folded form
(``onespec.folding``) is exported. Every format is made in a child process of its framework
(frameworks never share one), written beside ``out`` and moved into place only when made and
checked: a failed export leaves nothing. When a framework cannot express the network, each node
is exported alone to name the first one it cannot.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from .errors import OnespecError
from .spec import ModelSpec, trace

# format -> (framework, artifact suffix, dynamic batch)
FORMATS = {
    "onnx": ("torch", ".onnx", True),
    "onnx-paddle": ("paddle", ".onnx", True),
    "mindir": ("mindspore", ".mindir", True),
    "paddle": ("paddle", "", True),
    "torch-export": ("torch", ".pt2", True),
}
OPSET = 18  # torch's dynamo exporter emits 18 natively (17 goes through a version converter)
TOL = 1e-4


class ExportError(OnespecError, ValueError):
    pass


@dataclass
class ExportReport:
    model: str
    format: str
    files: list[str]
    folded: bool
    checked: bool
    rel_err: dict[int, float]
    opset: int | None
    dynamic_batch: bool
    seconds: float

    def line(self) -> str:
        what = (f"{self.format}{' (BN folded)' if self.folded else ''}: {', '.join(self.files)}"
                + (f" (opset {self.opset})" if self.opset else "")
                + (", dynamic batch" if self.dynamic_batch else ", fixed batch"))
        if not self.checked:
            return what + "; not checked (--no-check)"
        errs = ", ".join(f"batch {b}: {e:.1e}" for b, e in self.rel_err.items())
        return what + f"; ran in its runtime, max rel err vs numpy reference {errs} (<= {TOL:g})"


def export(spec: ModelSpec, state: dict, fmt: str, out: str, *, fold: bool = False, check: bool = True,
           batch: int = 2, seed: int = 0, opset: int = OPSET) -> ExportReport:
    """Write ``spec`` with canonical ``state`` as ``fmt`` at ``out`` (a file, or for ``paddle``
    a path prefix: ``out.json`` + ``out.pdiparams``) and check it in its runtime."""
    import time

    from ._proc import guarded_tempdir, run_child
    from .backends import numpy as npb
    from .weights import check_state, save_state

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    framework, suffix, dynamic = FORMATS[fmt]
    check_state(spec, state)
    if fold:
        from .folding import fold as _fold
        spec, state = _fold(spec, state)
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise ExportError(f"cannot write {out}: directory {directory} does not exist")
    t0 = time.perf_counter()
    batches = (batch, batch + 1) if dynamic else (batch,)
    with guarded_tempdir() as work:
        with open(os.path.join(work, "spec.json"), "w") as f:
            f.write(spec.model_dump_json())
        save_state(state, os.path.join(work, "state.npz"))
        if check:  # the references, one per batch size
            for b in batches:
                x = np.random.default_rng([seed, b]).standard_normal((b, *spec.input_shape)).astype(np.float32)
                np.save(os.path.join(work, f"x{b}.npy"), x)
                np.save(os.path.join(work, f"y{b}.npy"), npb.evaluate(spec, state, x))
        stage = tempfile.mkdtemp(prefix=".onespec-export-", dir=directory)
        try:
            base = os.path.join(stage, os.path.basename(out))
            args = ["-m", "onespec.export", fmt, work, base, str(batch), str(opset)]
            code, so, se = run_child(args + [",".join(map(str, batches)) if check else ""])
            if code < 0 or (code != 0 and b"onespec: error: " not in se):  # killed by the exporter itself
                _crashed(fmt, spec, work, args, code)
            result = _result(so, se, code, fmt)
            files = sorted(os.listdir(stage))
            for name in files:  # made and checked: move into place
                os.replace(os.path.join(stage, name), os.path.join(directory, name))
        finally:
            shutil.rmtree(stage, ignore_errors=True)
    return ExportReport(spec.name, fmt, [os.path.join(directory, n) for n in files], fold, check,
                        {int(k): v for k, v in result["rel_err"].items()}, result.get("opset"), dynamic,
                        round(time.perf_counter() - t0, 1))


def _crashed(fmt: str, spec: ModelSpec, work: str, args: list[str], code: int) -> None:
    """The exporter killed its process: export node by node in another child to name the node,
    reading its progress file if that one is killed too."""
    from ._proc import run_child

    progress = os.path.join(work, "locating.txt")
    if os.path.exists(progress):
        os.remove(progress)
    code2, _, se = run_child(args + ["locate"])
    mine = [ln[len("onespec: error: "):] for ln in se.decode(errors="replace").splitlines()
            if ln.startswith("onespec: error: ")]
    if mine:
        raise ExportError(mine[-1] + f" (the whole-network export was killed, exit {code})")
    lines = open(progress).read().split("\n") if os.path.exists(progress) else []
    last = [ln for ln in lines if ln.strip()][-1:] or ["?"]
    raise ExportError(f"{fmt} cannot express {spec.name}: node {last[0]} kills the exporter (signal "
                      f"{-code2 if code2 < 0 else code2})")


def _result(so: bytes, se: bytes, code: int, fmt: str) -> dict:
    lines = so.decode(errors="replace").strip().splitlines()
    if code == 0 and lines:
        return json.loads(lines[-1])
    text = se.decode(errors="replace")
    mine = [ln[len("onespec: error: "):] for ln in text.splitlines() if ln.startswith("onespec: error: ")]
    raise ExportError(mine[-1] if mine else f"{fmt} export failed: {text[-1500:]}")


# ------------------------------------------------------------------------- the child's side
def _make(fmt: str, net, spec: ModelSpec, base: str, batch: int, opset: int) -> tuple[list[str], int | None]:
    """Write the artifact for ``net``; returns (files written, opset)."""
    shape = (batch, *spec.input_shape)
    x = np.zeros(shape, np.float32)
    if fmt in ("onnx", "torch-export"):
        import torch
        net.eval()
        dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},)
        if fmt == "torch-export":
            ep = torch.export.export(net, (torch.from_numpy(x),), dynamic_shapes=dyn)
            torch.export.save(ep, base)
            return [base], None
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.from_numpy(x),), base, input_names=["input"], output_names=["output"],
                              opset_version=opset, dynamo=True, external_data=False, dynamic_shapes=dyn,
                              optimize=True, verbose=False)
        return [base], opset
    if fmt in ("paddle", "onnx-paddle"):
        import paddle
        net.eval()
        spec_in = [paddle.static.InputSpec([None, *spec.input_shape], "float32", "input")]
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
    import mindspore as ms
    net.set_train(False)
    ms.export(net, ms.Tensor(shape=[None, *spec.input_shape], dtype=ms.float32),
              file_name=base[:-len(".mindir")] if base.endswith(".mindir") else base, file_format="MINDIR")
    made = base if base.endswith(".mindir") else base + ".mindir"
    os.chmod(made, 0o644)  # MindSpore writes it read-only for its owner
    return [made], None


def _run(fmt: str, files: list[str], x: np.ndarray) -> np.ndarray:
    """The artifact, loaded by its own runtime, on ``x``."""
    if fmt in ("onnx", "onnx-paddle"):
        import onnxruntime as ort
        sess = ort.InferenceSession(files[0], providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]
    if fmt == "torch-export":
        import torch
        with torch.no_grad():
            return torch.export.load(files[0]).module()(torch.from_numpy(x)).numpy()
    if fmt == "paddle":
        import paddle.inference as pi
        cfg = pi.Config(files[0], files[1])
        cfg.disable_gpu()
        pred = pi.create_predictor(cfg)
        h = pred.get_input_handle(pred.get_input_names()[0])
        h.reshape(x.shape)
        h.copy_from_cpu(np.ascontiguousarray(x))
        pred.run()
        return pred.get_output_handle(pred.get_output_names()[0]).copy_to_cpu()
    import mindspore as ms
    from mindspore import nn
    graph = ms.load(files[0])
    return nn.GraphCell(graph)(ms.Tensor(x)).asnumpy()


def _build(be, framework: str, spec: ModelSpec):
    # a MindIR keeps MindSpore's own conv op, whatever machine exports it (the im2col form is for
    # MindSpore's CPU kernels; Ascend and GPU have fast convs); torch's graph keeps NCHW without
    # the channels-last copy on entry (a runtime picks its own layout)
    return be.build(spec, **{"mindspore": {"im2col": False}, "torch": {"channels_last": False}}.get(framework, {}))


def _locate(fmt: str, spec: ModelSpec, state: dict, be, framework: str, batch: int, opset: int, work: str) -> str:
    """The first leaf node, in execution order, that ``fmt`` cannot express on its own: whose
    export fails, or whose artifact does not run or gives another output than the framework."""
    from .conformance.diff import node_spec
    from .weights import layout

    some_passed = False
    progress = open(os.path.join(work, "locating.txt"), "a")
    for i, info in enumerate(r for r in trace(spec) if r.is_leaf):
        one, name = node_spec(spec, info.path)
        # an exporter may kill the process (paddle2onnx: SIGFPE): the parent reads the last line
        progress.write(f"{info.path} ({info.op})\n")
        progress.flush()
        os.fsync(progress.fileno())
        try:
            net = _build(be, framework, one)
            be.load_state(net, one, {k: state[info.path + k[len(name):]] for k in layout(one)})
            d = tempfile.mkdtemp(dir=work)
            files, _ = _make(fmt, net, one, os.path.join(d, f"node{i}" + FORMATS[fmt][1]), batch, opset)
            x = np.random.default_rng(i).standard_normal((batch, *one.input_shape)).astype(np.float32)
            want = be.forward(net, x)[0]
            got = _run(fmt, files, x)
            err = float(np.abs(got - want).max() / max(float(np.abs(want).max()), 1e-12)) \
                if got.shape == want.shape else float("inf")
            if not err <= TOL:
                return f"{info.path} ({info.op}): its artifact gives another output (max rel err {err:.1e})"
            some_passed = True
        except Exception as err:
            if not some_passed:  # the very first node fails too: nothing node-specific to name
                return ""
            return f"{info.path} ({info.op}): {type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
    return ""


def _worker(argv) -> int:
    """``python -m onespec.export FORMAT WORKDIR BASE BATCH OPSET CHECK_BATCHES``."""
    from ._proc import child_init, data_channel
    from .backends import load_backend
    from .spec import parse_spec
    from .weights import load_state

    child_init()
    fmt, work, base, batch, opset, checks = argv
    batch, opset = int(batch), int(opset)
    data_out = data_channel()
    framework = FORMATS[fmt][0]
    with open(os.path.join(work, "spec.json"), "rb") as f:
        spec = parse_spec(f.read())
    state = load_state(os.path.join(work, "state.npz"))
    be = load_backend(framework)
    if checks == "locate":  # the export crashed the last child: export node by node
        where = _locate(fmt, spec, state, be, framework, batch, opset, work)
        print(f"onespec: error: {fmt} cannot express {spec.name}: node {where}" if where else
              f"onespec: error: {fmt} export of {spec.name} crashed, and no node crashes alone", file=sys.stderr)
        return 2
    net = _build(be, framework, spec)
    be.load_state(net, spec, state)
    try:
        files, used_opset = _make(fmt, net, spec, base, batch, opset)
    except Exception as err:
        where = _locate(fmt, spec, state, be, framework, batch, opset, work)
        what = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}" if str(err).strip() else \
            type(err).__name__
        print(f"onespec: error: {fmt} cannot express {spec.name}: "
              + (f"node {where}" if where else f"the network as a whole ({what})"), file=sys.stderr)
        return 2
    errs = {}
    for b in filter(None, checks.split(",")):
        x = np.load(os.path.join(work, f"x{b}.npy"))
        want = np.load(os.path.join(work, f"y{b}.npy"))
        e = float("inf")
        try:
            got = _run(fmt, files, x)
            e = float(np.abs(got.astype(np.float64) - want).max() / max(float(np.abs(want).max()), 1e-12)) \
                if got.shape == want.shape else float("inf")
            problem = "" if e <= TOL else f"differs from the numpy reference at batch {b}: max rel err {e:.2e}"
        except Exception as err:
            problem = (f"does not run in its runtime at batch {b}: "
                       f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}")
        if problem:  # a node the format mistranslates, not rounding, is worth a node-by-node search
            where = _locate(fmt, spec, state, be, framework, batch, opset, work) if not e <= 1e-2 else ""
            print(f"onespec: error: the {fmt} artifact of {spec.name} {problem}"
                  + (f"; node {where}" if where else ""), file=sys.stderr)
            return 2
        errs[b] = e
    data_out.write(json.dumps({"rel_err": errs, "opset": used_opset}) + "\n")
    data_out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
