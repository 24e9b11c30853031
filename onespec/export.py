"""``onespec export``: a deployable artifact, checked by running it in its own runtime.

Each format is written by one backend, whose ``export`` module (``onespec/backends/<name>/export.py``)
makes the artifact (``make_artifact``) and runs it in the format's own runtime (``run_artifact``);
docs/deploy.md lists them. The batch dimension is dynamic in every format, and the check runs two
batch sizes: the artifact's output is compared with the float64 numpy evaluator's on a seeded
batch (max relative error <= 1e-4, as conformance); ``--no-check`` skips it. With ``fold`` the
BN-folded form (``onespec.folding``) is exported. Every format is made in a child process of its
framework (frameworks never share one) in a private temporary folder, and moved into place only
when made and checked: a failed or killed export leaves nothing (``export``'s docstring). When a
framework cannot express the network, each node is exported alone to name the first one it cannot.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass

import numpy as np

from .errors import OnespecError
from .spec import ModelSpec, trace


def formats() -> dict[str, tuple[str, str]]:
    """Every export format -> (the backend that writes it, the artifact's suffix: "" for a path
    prefix), as each backend declares them (``Framework.exports``)."""
    from .backends import framework, frameworks

    return {fmt: (name, suffix) for name in frameworks() for fmt, suffix in framework(name).exports.items()}


def _build_options(backend: str) -> dict:
    """``build`` keywords for a network to export (``Framework.export_build``)."""
    from .backends import framework

    return dict(framework(backend).export_build)


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


def _taken(fmt: str, out: str) -> list[str]:
    """Folders standing where an export of ``fmt`` to ``out`` would put a file: ``out`` or
    ``out`` + the format's suffix, or for a path-prefix format (no suffix) any ``out.*``."""
    suffix = formats()[fmt][1]
    if suffix:
        return [p for p in (out, out + suffix) if os.path.isdir(p)]
    folder, stem = os.path.split(os.path.abspath(out))
    return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                  if n.startswith(stem + ".") and os.path.isdir(os.path.join(folder, n)))


def check_options(batch: int, opset: int) -> None:
    """Refuse, before any work, a batch or ONNX opset that no export can use."""
    if batch < 1 or opset < 1:
        raise ExportError(f"batch and opset must be positive integers, not batch={batch} opset={opset}")


def check_destination(fmt: str, out: str) -> str:
    """Refuse, before any work, an ``out`` that an export of ``fmt`` cannot be put at: an unknown
    format, an empty path, a folder (or a path ending in a separator), a missing or unwritable
    parent folder, or an artifact name taken by a folder. Returns the parent folder."""
    known = formats()
    if fmt not in known:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(known)}")
    if not out or out.endswith((os.sep, "/")) or os.path.isdir(out):
        raise ExportError(f"cannot write {out!r}: -o is the artifact's file path (e.g. "
                          f"{os.path.join(out or '.', 'model' + known[fmt][1])}), not a folder")
    directory = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(directory):
        raise ExportError(f"cannot write {out}: directory {directory} does not exist")
    taken = _taken(fmt, out)
    if taken:
        raise ExportError(f"cannot write {out}: {taken[0]} is a folder")
    try:  # whether this process can create (and rename) entries there, root and read-only mounts included
        os.rmdir(tempfile.mkdtemp(prefix=".onespec-export-", dir=directory))
    except OSError as err:
        raise ExportError(f"cannot write {out}: directory {directory} is not writable "
                          f"({err.strerror or type(err).__name__})") from None
    return directory


def export(spec: ModelSpec, state: dict, fmt: str, out: str, *, fold: bool = False, check: bool = True,
           batch: int = 2, seed: int = 0, opset: int = OPSET) -> ExportReport:
    """Write ``spec`` with canonical ``state`` as ``fmt`` at ``out`` (a file, or for ``paddle``
    a path prefix: ``out.json`` + ``out.pdiparams``) and check it in its runtime.

    The child process makes and checks the artifact in a private temporary folder; only then is
    it copied into a hidden staging folder beside ``out`` and renamed into place, so a killed
    export leaves ``out``'s folder as it was or with the complete artifact (both temporary folders
    are removed by a watchdog if this process is killed)."""
    import time

    from ._proc import guarded_tempdir, run_child
    from .backends import numpy as npb
    from .spec.analysis import single_output
    from .weights import check_state, save_state

    single_output(spec, "export")
    directory = check_destination(fmt, out)
    check_options(batch, opset)
    check_state(spec, state)
    if fold:
        from .folding import fold as _fold
        spec, state = _fold(spec, state)
    t0 = time.perf_counter()
    batches = (batch, batch + 1)  # every format has a dynamic batch
    with guarded_tempdir() as work:
        with open(os.path.join(work, "spec.json"), "w") as f:
            f.write(spec.model_dump_json())
        save_state(state, os.path.join(work, "state.npz"))
        if check:  # the references, one per batch size
            for b in batches:
                x = np.random.default_rng([seed, b]).standard_normal((b, *spec.input_shape)).astype(np.float32)
                np.save(os.path.join(work, f"x{b}.npy"), x)
                np.save(os.path.join(work, f"y{b}.npy"), npb.evaluate(spec, state, x))
        made = os.path.join(work, "artifact")
        os.mkdir(made)
        args = ["-m", "onespec.export", fmt, work, os.path.join(made, os.path.basename(out)), str(batch), str(opset)]
        code, so, se = run_child(args + [",".join(map(str, batches)) if check else ""])
        if code < 0 or (code != 0 and b"onespec: error: " not in se):  # killed by the exporter itself
            _crashed(fmt, spec, work, args, code, se)
        result = _result(so, se, code, fmt)
        files = sorted(os.listdir(made))
        _put_in_place(made, files, directory)
    return ExportReport(spec.name, fmt, [os.path.join(directory, n) for n in files], fold, check,
                        {int(k): v for k, v in result["rel_err"].items()}, result.get("opset"), True,
                        round(time.perf_counter() - t0, 1))


def _put_in_place(made: str, files: list[str], directory: str) -> None:
    """Copy ``files`` from ``made`` into a guarded staging folder in ``directory`` (the same
    filesystem as their destination), then rename each into place."""
    from ._proc import guarded_tempdir

    with guarded_tempdir(prefix=".onespec-export-", dir=directory) as stage:
        for name in files:
            shutil.move(os.path.join(made, name), os.path.join(stage, name))
        for name in files:
            os.replace(os.path.join(stage, name), os.path.join(directory, name))


def _crashed(fmt: str, spec: ModelSpec, work: str, args: list[str], code: int, stderr: bytes) -> None:
    """The exporter killed its process (or it died without onespec's error line): export node by
    node in another child to name the node, reading its progress file if that one is killed too."""
    from ._proc import run_child

    progress = os.path.join(work, "locating.txt")
    if os.path.exists(progress):
        os.remove(progress)
    code2, _, se = run_child(args + ["locate"])
    mine = [ln[len("onespec: error: "):] for ln in se.decode(errors="replace").splitlines()
            if ln.startswith("onespec: error: ")]
    if mine:
        said = [ln.strip() for ln in stderr.decode(errors="replace").splitlines() if ln.strip()][-1:]
        how = f"signal {-code}" if code < 0 else f"exit {code}" + (f": {said[0][:300]}" if said else "")
        raise ExportError(mine[-1] + f" (the whole-network export died, {how})")
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
def run_onnx(path: str, x: np.ndarray) -> np.ndarray:
    """An ONNX artifact on ``x`` in onnxruntime (CPU): the check of every ONNX format."""
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _writer(fmt: str):
    """The backend that writes ``fmt`` and that backend package's ``export`` module
    (``make_artifact``, ``run_artifact``)."""
    import importlib

    from .backends import load_backend

    be = load_backend(formats()[fmt][0])
    return be, importlib.import_module(be.__name__ + ".export")


def _build(be, fmt: str, spec: ModelSpec):
    return be.build(spec, **_build_options(formats()[fmt][0]))


def _locate(fmt: str, spec: ModelSpec, state: dict, be, writer, batch: int, opset: int, work: str) -> str:
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
            net = _build(be, fmt, one)
            be.load_state(net, one, {k: state[info.path + k[len(name):]] for k in layout(one)})
            d = tempfile.mkdtemp(dir=work)
            files, _ = writer.make_artifact(fmt, net, one.input_shape, os.path.join(d, f"node{i}" + formats()[fmt][1]),
                                            batch, opset)
            x = np.random.default_rng(i).standard_normal((batch, *one.input_shape)).astype(np.float32)
            want = be.forward(net, x)[0]
            got = writer.run_artifact(fmt, files, x)
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
    from .spec import parse_spec
    from .weights import load_state

    child_init(on_parent_death=signal.SIGKILL)  # its files are in the parent's guarded folder
    fmt, work, base, batch, opset, checks = argv
    batch, opset = int(batch), int(opset)
    data_out = data_channel()
    with open(os.path.join(work, "spec.json"), "rb") as f:
        spec = parse_spec(f.read())
    state = load_state(os.path.join(work, "state.npz"))
    be, writer = _writer(fmt)
    if checks == "locate":  # the export crashed the last child: export node by node
        where = _locate(fmt, spec, state, be, writer, batch, opset, work)
        print(f"onespec: error: {fmt} cannot express {spec.name}: node {where}" if where else
              f"onespec: error: {fmt} export of {spec.name} crashed, and no node crashes alone", file=sys.stderr)
        return 2
    net = _build(be, fmt, spec)
    be.load_state(net, spec, state)
    try:
        files, used_opset = writer.make_artifact(fmt, net, spec.input_shape, base, batch, opset)
    except Exception as err:
        where = _locate(fmt, spec, state, be, writer, batch, opset, work)
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
            got = writer.run_artifact(fmt, files, x)
            e = float(np.abs(got.astype(np.float64) - want).max() / max(float(np.abs(want).max()), 1e-12)) \
                if got.shape == want.shape else float("inf")
            problem = "" if e <= TOL else f"differs from the numpy reference at batch {b}: max rel err {e:.2e}"
        except Exception as err:
            problem = (f"does not run in its runtime at batch {b}: "
                       f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}")
        if problem:  # a node the format mistranslates, not rounding, is worth a node-by-node search
            where = _locate(fmt, spec, state, be, writer, batch, opset, work) if not e <= 1e-2 else ""
            print(f"onespec: error: the {fmt} artifact of {spec.name} {problem}"
                  + (f"; node {where}" if where else ""), file=sys.stderr)
            return 2
        errs[b] = e
    data_out.write(json.dumps({"rel_err": errs, "opset": used_opset}) + "\n")
    data_out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
