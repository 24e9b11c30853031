"""Checkpoint conversion between torch ``.pth``, Paddle ``.pdparams``, MindSpore ``.ckpt``,
canonical ``.npz`` and torchvision ``state_dict`` files, for any zoo model.

Each side runs in its own interpreter (``python -m onespec.convert read|write ...``): the source
framework reads the file into a network built from the spec (so names and shapes are checked
by the same code that loads checkpoints) and hands over a canonical ``.npz``; the target
framework writes its native file from it. Paddle and MindSpore never share a process.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

from .errors import OnespecError
from .weights import StateError, check_state, load_state, save_state

NATIVE = ("torch", "paddle", "mindspore")
FORMATS = NATIVE + ("canonical", "torchvision")
EXTENSIONS = {".pth": "torch", ".pt": "torch", ".pdparams": "paddle", ".ckpt": "mindspore", ".npz": "canonical"}


def format_of(path: str) -> str | None:
    return EXTENSIONS.get(os.path.splitext(path)[1].lower())


def _spec(arch: str, overrides: dict):
    from .zoo import get_spec
    return get_spec(arch, **overrides)


def read(fmt: str, arch: str, path: str, overrides: dict | None = None) -> dict:
    """Canonical state from a file of format ``fmt`` (``"auto"`` for .pth: onespec or torchvision
    names). Imports the framework: call it in a process meant for that framework."""
    from .backends import load_backend

    spec = _spec(arch, overrides or {})
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if fmt == "canonical":
        state = load_state(path)
        check_state(spec, state, what=f"{path}")
        return state
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
    if fmt not in NATIVE:
        raise OnespecError(f"cannot write format {fmt!r}; choose from {', '.join(NATIVE + ('canonical',))}")
    backend = load_backend(fmt)
    net = backend.build(spec)
    backend.load_state(net, spec, state)
    backend.save(net, path)


def _step(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "onespec.convert", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.startswith("onespec: error: ")]
        msg = lines[-1][len("onespec: error: "):] if lines else (proc.stderr or proc.stdout)[-2000:]
        raise StateError(msg)


def convert(src: str, arch: str, to: str, out: str, from_: str | None = None, overrides: dict | None = None) -> str:
    """Convert ``src`` to format ``to`` at ``out``; returns the detected source format."""
    overrides = overrides or {}
    src_fmt = from_ or format_of(src)
    if src_fmt is None:
        raise OnespecError(f"cannot tell the format of {src} from its extension; pass --from "
                           f"({', '.join(FORMATS)})")
    if src_fmt not in FORMATS or to not in NATIVE + ("canonical",):
        raise OnespecError(f"convert reads {', '.join(FORMATS)} and writes {', '.join(NATIVE + ('canonical',))}")
    if src_fmt == "torch" and from_ is None:
        src_fmt = "auto"  # .pth: onespec's torch names or torchvision's, decided from the keys
    _spec(arch, overrides)  # a bad arch or override fails here, before any framework starts
    ov = json.dumps(overrides)
    with tempfile.TemporaryDirectory() as tmp:
        canonical = src if src_fmt == "canonical" else os.path.join(tmp, "state.npz")
        if src_fmt != "canonical":
            _step(["read", src_fmt, arch, src, canonical, ov])
        _step(["write", to, arch, canonical, out, ov])
    return src_fmt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m onespec.convert")
    ap.add_argument("step", choices=["read", "write"])
    ap.add_argument("fmt")
    ap.add_argument("arch")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("overrides")
    a = ap.parse_args(argv)
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(a.overrides).items()}
    try:
        if a.step == "read":
            save_state(read(a.fmt, a.arch, a.src, overrides), a.dst)
        else:
            write(a.fmt, a.arch, load_state(a.src), a.dst, overrides)
    except (OnespecError, FileNotFoundError, ValueError) as err:
        print(f"onespec: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
