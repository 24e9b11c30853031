"""Checkpoint conversion between torch ``.pth``, Paddle ``.pdparams``, MindSpore ``.ckpt``,
canonical ``.npz`` and torchvision ``state_dict`` files, for any zoo model.

Each side runs in its own isolated interpreter (``python -I -m onespec.convert read|write ...``):
the source framework reads the file into a network built from the spec (so names and shapes are
checked by the same code that loads checkpoints) and streams a canonical ``.npz`` through a pipe;
the target framework writes its native file from it, atomically. Paddle and MindSpore never
share a process, nothing is written to a temporary directory, and the children die with the
parent (``onespec._proc``).
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import os
import sys

from .backends import FRAMEWORKS
from .errors import MissingFileError, OnespecError
from .weights import StateError, check_state, load_state, save_state

WRITABLE = FRAMEWORKS + ("canonical",)
FORMATS = WRITABLE + ("torchvision",)
EXTENSIONS = {".pth": "torch", ".pt": "torch", ".pdparams": "paddle", ".ckpt": "mindspore", ".npz": "canonical"}


class ConvertError(OnespecError, ValueError):
    """A conversion failed; the message is the failing side's."""


def format_of(path: str) -> str | None:
    return EXTENSIONS.get(os.path.splitext(path)[1].lower())


def _spec(arch: str, overrides: dict):
    """A zoo model, or ``@path``: a spec JSON file (how the training loop passes its spec on)."""
    if arch.startswith("@"):
        from .spec import parse_spec
        with open(arch[1:], "rb") as f:
            return parse_spec(f.read())
    from .zoo import get_spec
    return get_spec(arch, **overrides)


def read_partial(fmt: str, spec, path: str) -> tuple[dict, list[str], list[str], list[str]]:
    """(canonical tensors of ``spec`` found in the file with the right shape, skipped tensors as
    "name (file shape -> model shape)", tensors the model has and the file lacks, file tensors the
    model has no place for, by their names in the file). For transfer
    learning: a head of another size is skipped and listed, not an error. Imports the format's
    framework: call it in a process meant for it (``onespec.training`` runs it in a child)."""
    import numpy as np

    from .backends import load_backend
    from .weights import layout, native_layout

    if not os.path.exists(path):
        raise MissingFileError(path, "no such checkpoint")
    want = layout(spec)
    if fmt == "canonical":
        raw, names, transposed = load_state(path), {c: c for c in want}, set()
    else:
        name = "torch" if fmt in ("torchvision", "auto") else fmt
        backend = load_backend(name)
        raw = backend.read(path)
        names, transposed = None, set()
        if fmt in ("torchvision", "auto"):
            from .importers import importable, torchvision_names
            if spec.name in importable("torchvision"):
                names = torchvision_names(spec, partial=True)
            if fmt == "auto" and names is not None:
                # .pth: torchvision's names or onespec's, whichever the file's keys follow
                native = backend.native_names(spec)
                if sum(n in raw for n in native.values()) >= sum(n in raw for n in names.values()):
                    names = native
            elif names is None and fmt == "torchvision":
                raise ConvertError(f"{spec.name} has no torchvision counterpart")
        if names is None:
            mod = importlib.import_module(f"onespec.backends.{name}.weights")
            emit = importlib.import_module(f"onespec.backends.{name}.emit")
            nl = native_layout(spec, getattr(mod, "ROLES", {}), getattr(emit, "TRANSPOSED", frozenset()))
            names = {c: n for c, (n, _) in nl.items()}
            transposed = {c for c, (_, t) in nl.items() if t}
    state, skipped, missing = {}, [], []
    for c, t in want.items():
        n = names.get(c)
        if n is None or n not in raw:
            missing.append(c)
            continue
        a = np.asarray(raw[n])
        a = a.T if c in transposed else a
        if tuple(a.shape) != tuple(t.shape):
            skipped.append(f"{c} ({'x'.join(map(str, a.shape))} in the file, {'x'.join(map(str, t.shape))} in the model)")
            continue
        state[c] = np.ascontiguousarray(a, np.float32)
    used = set(names.values())
    unexpected = sorted(k for k in raw if k not in used and not k.endswith("num_batches_tracked"))
    return state, skipped, missing, unexpected


def read(fmt: str, arch: str, path: str, overrides: dict | None = None) -> dict:
    """Canonical state from a file of format ``fmt`` (``"auto"`` for .pth: onespec or torchvision
    names). Imports the framework: call it in a process meant for that framework."""
    from .backends import load_backend

    spec = _spec(arch, overrides or {})
    if not os.path.exists(path):
        raise MissingFileError(path, "no such checkpoint")
    if fmt == "canonical":
        return load_state(path, spec)
    backend = load_backend("torch" if fmt in ("torchvision", "auto") else fmt)
    if fmt in ("torchvision", "auto"):
        from .importers import from_torchvision, looks_like_torchvision

        raw = backend.read(path)
        if fmt == "torchvision" or looks_like_torchvision(spec, raw):
            return from_torchvision(spec, raw)
    net = backend.build(spec)
    backend.load(net, path)
    return backend.get_state(net, spec)


def write(fmt: str, arch: str, state: dict, path: str, overrides: dict | None = None) -> None:
    """Write ``state`` as a native file of ``fmt`` (atomically), via a network built from the spec."""
    from .backends import load_backend

    spec = _spec(arch, overrides or {})
    check_state(spec, state)
    if fmt == "canonical":
        save_state(state, path)
        return
    if fmt not in FRAMEWORKS:
        raise ConvertError(f"cannot write format {fmt!r}; choose from {', '.join(WRITABLE)}")
    backend = load_backend(fmt)
    net = backend.build(spec)
    backend.load_state(net, spec, state)
    backend.save(net, path)


def _step(args: list[str], data: bytes | None = None) -> bytes:
    from ._proc import run_child

    code, out, err = run_child(["-m", "onespec.convert", *args], input=data)
    if code != 0:
        text = err.decode(errors="replace")
        lines = [ln for ln in text.splitlines() if ln.startswith("onespec: error: ")]
        raise ConvertError(lines[-1][len("onespec: error: "):] if lines else
                           f"conversion step {args[0]} exited with {code}: {text[-2000:]}")
    return out


def convert(src: str, arch: str, to: str, out: str, from_: str | None = None, overrides: dict | None = None) -> str:
    """Convert ``src`` to format ``to`` at ``out``; returns the detected source format. ``out`` is
    replaced only by a complete file."""
    overrides = overrides or {}
    src_fmt = from_ or format_of(src)
    if src_fmt is None:
        raise ConvertError(f"cannot tell the format of {src} from its extension; pass --from ({', '.join(FORMATS)})")
    if src_fmt not in FORMATS or to not in WRITABLE:
        raise ConvertError(f"convert reads {', '.join(FORMATS)} and writes {', '.join(WRITABLE)}")
    if not os.path.isfile(src):
        raise MissingFileError(src, "no such checkpoint")
    if os.path.isdir(out) or not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise ConvertError(f"cannot write {out}: not a file in an existing directory")
    if src_fmt == "torch" and from_ is None:
        src_fmt = "auto"  # .pth: onespec's torch names or torchvision's, decided from the keys
    _spec(arch, overrides)  # a bad arch or override fails here, before any framework starts
    ov = json.dumps(overrides)
    if src_fmt == "canonical":
        _step(["write", to, arch, os.path.abspath(src), os.path.abspath(out), ov])
    else:
        data = _step(["read", src_fmt, arch, os.path.abspath(src), "-", ov])
        _step(["write", to, arch, "-", os.path.abspath(out), ov], data)
    return src_fmt


def read_for(spec, path: str, fmt: str | None = None, here: str | None = None
             ) -> tuple[dict, list[str], list[str], list[str]]:
    """``read_partial`` for any format ``convert`` reads: (state, skipped, missing, unexpected).
    In this process for canonical files and files of framework ``here`` (the one this process
    runs), else in an isolated child of the file's framework (Paddle and MindSpore never share a
    process)."""
    import tempfile

    import numpy as np

    fmt = fmt or format_of(path)
    if fmt is None:
        raise ConvertError(f"cannot tell the format of {path} from its extension; give the format ({', '.join(FORMATS)})")
    if fmt not in FORMATS:
        raise ConvertError(f"unknown checkpoint format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not os.path.isfile(path):
        raise MissingFileError(path, "no such checkpoint")
    if fmt == "torch":
        fmt = "auto"
    if fmt == "canonical" or fmt == here or (here == "torch" and fmt in ("auto", "torchvision")):
        return read_partial(fmt, spec, path)
    with tempfile.TemporaryDirectory(prefix="onespec-spec-") as d:
        sp = os.path.join(d, "spec.json")
        with open(sp, "w") as f:
            f.write(spec.model_dump_json())
        data = _step(["partial", fmt, "@" + sp, os.path.abspath(path), "-", "{}"])
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        state = {k: z[k] for k in z.files if k != "__report__"}
        report = json.loads(bytes(z["__report__"]).decode())
    return state, report["skipped"], report["missing"], report["unexpected"]


def main(argv=None) -> int:
    """One side of a conversion. ``-`` as src (write) / dst (read): the canonical ``.npz`` on
    stdin / stdout. Framework output printed to stdout goes to stderr instead."""
    from ._proc import child_init

    child_init()
    ap = argparse.ArgumentParser(prog="python -m onespec.convert")
    ap.add_argument("step", choices=["read", "write", "partial"])
    ap.add_argument("fmt")
    ap.add_argument("arch")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("overrides")
    a = ap.parse_args(argv)
    data_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # frameworks print to stdout; keep the data channel clean
    try:
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(a.overrides).items()}
        if a.step == "partial":
            import numpy as np
            state, skipped, missing, unexpected = read_partial(a.fmt, _spec(a.arch, overrides), a.src)
            buf = io.BytesIO()
            np.savez(buf, **state, **{"__report__": np.frombuffer(json.dumps(
                {"skipped": skipped, "missing": missing, "unexpected": unexpected}).encode(), np.uint8)})
            data_out.write(buf.getvalue())
            data_out.flush()
        elif a.step == "read":
            state = read(a.fmt, a.arch, a.src, overrides)
            if a.dst == "-":
                import numpy as np
                buf = io.BytesIO()
                np.savez(buf, **state)
                data_out.write(buf.getvalue())
                data_out.flush()
            else:
                save_state(state, a.dst)
        else:
            spec = _spec(a.arch, overrides)
            src = io.BytesIO(sys.stdin.buffer.read()) if a.src == "-" else a.src
            write(a.fmt, a.arch, load_state(src, spec), a.dst, overrides)
    except (OnespecError, FileNotFoundError, ValueError) as err:
        print(f"onespec: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
