"""``onespec capture MODULE:FUNCTION --input-shape C,H,W -o DIR``: ``FUNCTION()`` (from an
importable module or a ``.py`` file) returns a model of a framework onespec captures from (a
``torch.nn.Module``, ``paddle.nn.Layer`` or ``mindspore.nn.Cell``, see ``onespec.capture.framework_of``); its capture is proven in
every framework on the example input (and on ``--input x.npy``, a batch of the user's data) and
only then are ``DIR/spec.json``, ``DIR/weights.npz`` and ``DIR/report.json`` / ``report.md`` written."""
from __future__ import annotations

import json
import os
import time

import numpy as np

from ..backends import FRAMEWORKS
from ..cli.common import add_backends
from ..errors import MissingFileError, OnespecError
from .ir import CaptureError

MAX_INPUT_BYTES = 256 << 20


def add_parser(sub) -> None:
    p = sub.add_parser("capture", help="a model's own network (a torch Module, paddle Layer or mindspore Cell) -> an onespec spec and weights, proven equal in "
                                       "every framework (writes nothing otherwise)")
    p.add_argument("target", metavar="MODULE:FUNCTION", help="FUNCTION() returns the model (a torch.nn.Module, paddle.nn.Layer or mindspore.nn.Cell) "
                   "(MODULE: an importable name or a .py file)")
    p.add_argument("--input-shape", required=True, help="one sample's shape, no batch dim, e.g. 3,224,224")
    p.add_argument("-o", "--out", required=True, help="folder for spec.json, weights.npz and report.json/.md")
    p.add_argument("--input", help="a .npy batch of real inputs, also proven")
    add_backends(p, FRAMEWORKS, FRAMEWORKS, "frameworks the proof builds the spec in")
    p.set_defaults(fn=run)


def load_target(target: str):
    """The model ``FUNCTION()`` returns (``onespec.models.load_code``: ``MODULE`` is a dotted
    name or a path to a .py file), with the frameworks' import-time logs quiet (unless verbose).
    The function is called with no arguments; its own failure is one line naming it."""
    from ..backends import quiet_imports
    from ..models import load_code

    with quiet_imports():
        fn = load_code(target, "capture")
        try:
            return fn()
        except Exception as err:  # the user's function: any failure is reported, not a traceback
            raise CaptureError([f"{target}: calling {getattr(fn, '__name__', 'it')}() with no arguments raised "
                                f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
                                ]) from None


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise OnespecError(f"--input-shape {text!r}: give comma-separated ints, e.g. 3,224,224") from None
    if not 1 <= len(shape) <= 4 or min(shape) < 1 or max(shape) > 1 << 16:
        raise OnespecError(f"--input-shape {text!r}: one sample's shape without the batch dim, 1 to 4 "
                           "positive sizes, e.g. 3,224,224")
    return shape


def check_out(out: str) -> None:
    """``-o`` can become a folder: refused before any work when it is a file or cannot be made."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise OnespecError(f"-o {out}: a file is there; give a folder (made if missing)")
    parent = os.path.abspath(out)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise OnespecError(f"-o {out}: cannot make or write a folder there ({parent} is not a writable folder)")


def _inputs(path: str | None, shape) -> list[np.ndarray]:
    xs = [np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)]
    if path:
        if not os.path.isfile(path):
            raise MissingFileError(path, "--input: no such file")
        if os.path.getsize(path) > MAX_INPUT_BYTES:
            raise OnespecError(f"--input {path}: larger than {MAX_INPUT_BYTES >> 20} MiB")
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise OnespecError(f"--input {path}: not a .npy array of numbers ({err})") from None
        if not isinstance(x, np.ndarray):
            raise OnespecError(f"--input {path}: an .npz archive; give one .npy batch")
        if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape) or x.dtype.kind != "f":
            raise OnespecError(f"--input {path}: a float batch of shape (N, {', '.join(map(str, shape))}) is needed, "
                               f"got {x.dtype} {x.shape}")
        xs.append(np.ascontiguousarray(x, np.float32))
    return xs


def run(args) -> int:
    from ..spec import analyze
    from ..weights import save_state
    from . import capture, framework_of, original_names, reference_outputs, state_keys
    from .prove import TOLERANCE, prove

    shape = _shape(args.input_shape)
    check_out(args.out)
    xs = _inputs(args.input, shape)
    module = load_target(args.target)
    t0 = time.perf_counter()
    spec, state = capture(module, shape)
    seconds = time.perf_counter() - t0
    fw = framework_of(module)
    proofs = prove(spec, state, xs, [reference_outputs(module, x) for x in xs], args.backends, here=fw)
    failed = [f"{fw} on {'the example input' if i == 0 else args.input}: "
              + (r.get("error") or f"relative error {max(r['errors']):.2e} > {TOLERANCE:g}")
              for i, p in enumerate(proofs) for fw, r in p.items() if not r["ok"]]
    if failed:
        raise CaptureError(["the captured spec differs from the module, nothing written: " + f for f in failed])
    os.makedirs(args.out, exist_ok=True)
    a = analyze(spec)
    keys = state_keys(module)
    report = {"target": args.target, "input_shape": list(shape), "capture_seconds": round(seconds, 2),
              "params": a.params, "state": a.state, "macs": a.macs, "tensors": len(state),
              "names_are_the_modules_keys": sorted(original_names(spec, fw).values()) == keys, "tolerance": TOLERANCE,
              "proof": [{"input": "example" if i == 0 else args.input, "frameworks": p} for i, p in enumerate(proofs)]}
    _write(os.path.join(args.out, "spec.json"), spec.model_dump_json(indent=1))
    save_state(state, os.path.join(args.out, "weights.npz"))
    _write(os.path.join(args.out, "report.json"), json.dumps(report, indent=1))
    _write(os.path.join(args.out, "report.md"), _markdown(report))
    print(f"captured {args.target}: {a.params:,} params, {len(state)} tensors named as in the module; "
          f"proven in {', '.join(args.backends)} (max relative error "
          f"{max(max(r['errors']) for p in proofs for r in p.values()):.1e}); wrote {args.out}")
    return 0


def _write(path: str, text: str) -> None:
    from ..weights import atomic_write

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(path, write)


def _markdown(report: dict) -> str:
    lines = [f"# Capture of `{report['target']}`", "",
             f"input {tuple(report['input_shape'])}, {report['params']:,} params, {report['state']:,} state, "
             f"{report['macs']:,} MACs, {report['tensors']} tensors (names = the module's state_dict keys: "
             f"{report['names_are_the_modules_keys']}); captured in {report['capture_seconds']} s.", "",
             "| input | framework | max relative error per output |", "|---|---|---|"]
    for p in report["proof"]:
        for fw, r in p["frameworks"].items():
            lines.append(f"| {p['input']} | {fw} | {', '.join(f'{e:.1e}' for e in r['errors'])} |")
    return "\n".join(lines) + "\n"
