"""Checkpoint conversion between the frameworks' native files (each backend's
``FRAMEWORK.extensions``: torch ``.pth``, Paddle ``.pdparams``, MindSpore ``.ckpt``), canonical
``.npz`` and the model libraries' files (torchvision, timm, PaddleClas, MindCV), for any zoo model.

Each side runs in its own isolated interpreter (``python -I -m onespec.convert read|write ...``):
the source framework reads the file into a network built from the spec (so names and shapes are
checked by the same code that loads checkpoints) and streams a canonical ``.npz`` through a pipe;
the target framework writes its native file from it, atomically. Paddle and MindSpore never
share a process, nothing is written to a temporary directory, and the children die with the
parent (``onespec._proc``).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys

from .backends import by_extension, framework, frameworks
from .errors import MissingFileError, OnespecError
from .importers import LIBRARIES
from .weights import StateError, check_state, load_state, save_state

LIBRARY_FORMATS = tuple(LIBRARIES)


def writable() -> tuple[str, ...]:
    """The formats ``convert`` writes: every framework's (built-in and registered) and canonical."""
    return frameworks() + ("canonical",)


def formats() -> tuple[str, ...]:
    """The formats ``convert`` reads; "onespec": the framework's file from its extension, in
    onespec's own names (no layout detection)."""
    return writable() + LIBRARY_FORMATS + ("onespec",)


# the command line's choices (backends registered before onespec is imported included)
WRITABLE, FORMATS = writable(), formats()


class ConvertError(OnespecError, ValueError):
    """A conversion failed; the message is the failing side's."""


def format_of(path: str) -> str | None:
    """The format of ``path`` from its extension: a framework's, or canonical (``.npz``)."""
    fw = by_extension(path)
    return fw if fw is not None or not path.lower().endswith(".npz") else "canonical"


def _spec(arch: str, overrides: dict):
    """The model ``arch`` names (a zoo name, spec file or module:function: ``onespec.models``)."""
    from .models import resolve
    return resolve(arch, overrides, origin="--set")


def _framework(fmt: str) -> str:
    """The framework that reads a file of ``fmt`` (``auto:<framework>``: that framework, the
    layout decided from the file's keys)."""
    if fmt.startswith("auto:"):
        return fmt[5:]
    return LIBRARIES[fmt].framework if fmt in LIBRARIES else fmt


def _native(spec, framework: str) -> dict[str, tuple[str, bool]]:
    """canonical name -> (onespec's own name in ``framework``'s files, stored transposed)."""
    from .backends import framework as descriptor
    from .weights import native_layout

    fw = descriptor(framework)
    return native_layout(spec, fw.roles, fw.transposed)


def _layouts(fmt: str, spec, partial: bool) -> list[tuple[str, dict[str, tuple[str, bool]]]]:
    """The layouts a file of ``fmt`` may follow: (label, canonical -> (file name, transposed))."""
    from .importers import library_layout, libraries_for

    if fmt in LIBRARIES:
        return [(fmt, library_layout(spec, fmt, partial))]
    framework = _framework(fmt)
    out = [("onespec", _native(spec, framework))]
    if spec.aliases and fmt.startswith("auto:"):
        # a captured model's original checkpoint: the canonical names, aliased where the spec says
        out.append(("original", {c: (spec.aliases.get(c, c), t) for c, (_, t) in out[0][1].items()}))
    if fmt.startswith("auto:"):
        out += [(lib, library_layout(spec, lib, partial=True)) for lib in libraries_for(spec.name, framework)]
    return out


def read_partial(fmt: str, spec, path: str) -> tuple[dict, list[str], list[str], list[str]]:
    """(canonical tensors of ``spec`` found in the file with the right shape, skipped tensors as
    "name (file shape -> model shape)", tensors the model has and the file lacks, file tensors the
    model has no place for, by their names in the file). For transfer
    learning: a head of another size is skipped and listed, not an error. ``auto:<framework>``:
    onespec's names or a library's (torchvision, timm, PaddleClas, MindCV), whichever the file's
    keys follow. Imports the format's framework: call it in a process meant for it
    (``onespec.training`` runs it in a child)."""
    import numpy as np

    from .backends import load_backend
    from .importers import bookkeeping, fit, import_scales
    from .weights import layout, load_partial

    if not os.path.exists(path):
        raise MissingFileError(path, "no such checkpoint")
    want = layout(spec)
    if fmt == "canonical":  # only the spec's tensors are decompressed, whatever the file declares
        raw, names, lib = load_partial(path, {c: t.shape for c, t in want.items()}), {c: (c, False) for c in want}, None
    else:
        raw = load_backend(_framework(fmt)).read(path)
        lib, names = max(_layouts(fmt, spec, partial=True), key=lambda kv: sum(n in raw for n, _ in kv[1].values()))
    foreign = lib not in (None, "onespec", "original")  # a library's layout
    scales = import_scales(spec.name, lib) if foreign else {}
    state, skipped, missing = {}, [], []
    for c, t in want.items():
        n, transposed = names.get(c, (None, False))
        if n is None or n not in raw:
            missing.append(c)
            continue
        a = fit(raw[n], t.shape, transposed)
        if a is None:
            shape = np.shape(raw[n])[::-1] if transposed else np.shape(raw[n])
            skipped.append(f"{c} ({'x'.join(map(str, shape))} in the file, {'x'.join(map(str, t.shape))} in the model)")
            continue
        state[c] = np.ascontiguousarray(a * scales[c] if c in scales else a, np.float32)
    used = {n for n, _ in names.values()}
    unexpected = sorted(k for k in raw if k not in used and not k.endswith("num_batches_tracked")
                        and not (foreign and bookkeeping(lib, k)))
    return state, skipped, missing, unexpected


class LayoutError(ConvertError):
    """A checkpoint follows none of the layouts onespec knows for the model."""


def read(fmt: str, arch: str, path: str, overrides: dict | None = None) -> tuple[dict, dict]:
    """(canonical state, {"layout": onespec | canonical | <library>, "overrides": model options
    the file needs}) from a file of format ``fmt``: a framework, a library (``torchvision``,
    ``timm``, ``paddleclas``, ``mindcv``), ``canonical``, or ``auto:<framework>`` (onespec's
    layout or any library's of that framework, decided from the keys; a file that fits none is
    refused, naming the closest layout and its first keys that differ). A library's layout
    brings the model options it needs (``import_overrides``); the caller's ``overrides`` win.
    Imports the framework: call it in a process meant for that framework."""
    from .backends import load_backend
    from .importers import import_overrides, libraries_for, match
    from .models import kind

    overrides = dict(overrides or {})
    spec = _spec(arch, overrides)
    if not os.path.exists(path):
        raise MissingFileError(path, "no such checkpoint")
    if fmt == "canonical":
        return load_state(path, spec), {"layout": "canonical", "overrides": {}}
    framework = _framework(fmt)
    backend = load_backend(framework)
    if fmt in LIBRARIES or fmt.startswith("auto:"):
        raw = backend.read(path)
        libs = [fmt] if fmt in LIBRARIES else libraries_for(spec.name, framework) if kind(arch) == "zoo" else []
        tried = []
        if fmt.startswith("auto:"):
            own = {n for n, _ in _native(spec, framework).values()}
            keys = {k for k in raw if not k.endswith("num_batches_tracked")}
            if keys == own:
                libs = []  # onespec's own layout: read below through a network
            else:
                tried.append(("onespec", sorted(own - keys), sorted(keys - own), []))
                if spec.aliases:
                    state, skipped, missing, unexpected = read_partial(fmt, spec, path)
                    if not (skipped or missing or unexpected):
                        check_state(spec, state, what=f"original {spec.name} checkpoint")
                        return state, {"layout": "original", "overrides": {}}
                    tried.append(("original", missing, unexpected, skipped))
        for lib in libs:
            ov = {**import_overrides(spec.name, lib), **overrides}
            lspec = _spec(arch, ov)
            state, missing, unexpected, mismatched = match(lspec, lib, raw)
            if not (missing or unexpected or mismatched):
                check_state(lspec, state, what=f"{lib} {spec.name} checkpoint")
                return state, {"layout": lib, "overrides": {k: v for k, v in ov.items() if k not in overrides}}
            tried.append((lib, missing, unexpected, mismatched))
        if tried:
            raise LayoutError(_closest(spec.name, path, tried))
    net = backend.build(spec)
    backend.load(net, path)
    return backend.get_state(net, spec), {"layout": "onespec", "overrides": {}}


def _closest(arch: str, path: str, tried: list) -> str:
    lib, missing, unexpected, mismatched = min(tried, key=lambda t: len(t[1]) + len(t[2]) + len(t[3]))
    who = "onespec's own" if lib == "onespec" else f"{lib}'s"
    parts = [f"{path} is not a {arch} checkpoint onespec knows ({', '.join(t[0] for t in tried)} tried); "
             f"closest: {who} layout"]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if items:
            parts.append(f"{label} ({len(items)}): {', '.join(items[:5])}{', ...' if len(items) > 5 else ''}")
    return "; ".join(parts)


def write(fmt: str, arch: str, state: dict, path: str, overrides: dict | None = None) -> None:
    """Write ``state`` as a native file of ``fmt`` (atomically), via a network built from the spec."""
    from .backends import load_backend

    spec = _spec(arch, overrides or {})
    check_state(spec, state)
    if fmt == "canonical":
        save_state(state, path)
        return
    if fmt not in frameworks():
        raise ConvertError(f"cannot write format {fmt!r}; choose from {', '.join(writable())}")
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


def convert(src: str, arch: str, to: str, out: str, from_: str | None = None, overrides: dict | None = None
            ) -> tuple[str, dict]:
    """Convert ``src`` to format ``to`` at ``out``; returns (the source layout: ``onespec``,
    ``canonical`` or a library, the model options the file needed). ``from_`` omitted: the
    framework from the extension and the layout from the keys (onespec's or any library's).
    ``out`` is replaced only by a complete file; a checkpoint of another library or
    architecture is refused before anything is written."""
    overrides = overrides or {}
    src_fmt = from_
    if from_ in (None, "onespec"):
        src_fmt = format_of(src)
        if src_fmt is None:
            raise ConvertError(f"cannot tell the format of {src} from its extension; pass --from ({', '.join(formats())})")
    if src_fmt in frameworks() and from_ != "onespec":
        # a framework's file: onespec's layout or any library's of that framework, from the keys
        src_fmt = f"auto:{src_fmt}"
    if src_fmt not in formats() and not src_fmt.startswith("auto:") or to not in writable():
        raise ConvertError(f"convert reads {', '.join(formats())} and writes {', '.join(writable())}")
    if not os.path.isfile(src):
        raise MissingFileError(src, "no such checkpoint")
    if os.path.isdir(out) or not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise ConvertError(f"cannot write {out}: not a file in an existing directory")
    out_fmt = format_of(out)
    if out_fmt is not None and out_fmt != to:  # a Paddle file named .pth is read back as torch's
        ext = ".npz" if to == "canonical" else framework(to).extensions[0]
        raise ConvertError(f"cannot write {to} to {out}: its extension is {out_fmt}'s; name the output *{ext}")
    spec = _spec(arch, overrides)  # a bad arch or override fails here, before any framework starts
    from .models import kind, spec_file
    if kind(arch) == "code":  # the children read the resolved spec: the user's code runs once, here
        with spec_file(spec) as path:
            return convert(src, path, to, out, from_, {})
    if src_fmt in LIBRARY_FORMATS:
        from .importers import importable
        if arch not in importable(src_fmt):
            raise ConvertError(f"{arch} has no {src_fmt} counterpart; {src_fmt} import covers "
                               f"{', '.join(importable(src_fmt)) or 'no model yet'}")
    if src_fmt == "canonical":
        _step(["write", to, arch, os.path.abspath(src), os.path.abspath(out), json.dumps(overrides)])
        return "canonical", {}
    import numpy as np
    data = _step(["read", src_fmt, arch, os.path.abspath(src), "-", json.dumps(overrides)])
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        info = json.loads(bytes(z["__report__"]).decode())
    # the library's layout may need model options (timm's SE widths): the written file fits them
    _step(["write", to, arch, "-", os.path.abspath(out), json.dumps({**info["overrides"], **overrides})], data)
    return info["layout"], info["overrides"]


def read_for(spec, path: str, fmt: str | None = None, here: str | None = None
             ) -> tuple[dict, list[str], list[str], list[str]]:
    """``read_partial`` for any format ``convert`` reads: (state, skipped, missing, unexpected).
    In this process for canonical files and files of framework ``here`` (the one this process
    runs), else in an isolated child of the file's framework (Paddle and MindSpore never share a
    process)."""
    import numpy as np

    fmt = fmt or format_of(path)
    if fmt is None:
        raise ConvertError(f"cannot tell the format of {path} from its extension; give the format ({', '.join(formats())})")
    if fmt not in formats() and not fmt.startswith("auto:"):
        raise ConvertError(f"unknown checkpoint format {fmt!r}; choose from {', '.join(formats())}")
    if not os.path.isfile(path):
        raise MissingFileError(path, "no such checkpoint")
    if fmt == "onespec":
        fmt = format_of(path)
        if fmt is None:
            raise ConvertError(f"cannot tell the format of {path} from its extension")
    elif fmt in frameworks():
        fmt = f"auto:{fmt}"  # onespec's names or a library's, from the keys
    if fmt == "canonical" or _framework(fmt) == here:
        return read_partial(fmt, spec, path)
    from .models import spec_file
    with spec_file(spec) as sp:
        data = _step(["partial", fmt, sp, os.path.abspath(path), "-", "{}"])
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        state = {k: z[k] for k in z.files if k != "__report__"}
        report = json.loads(bytes(z["__report__"]).decode())
    return state, report["skipped"], report["missing"], report["unexpected"]


def main(argv=None) -> int:
    """One side of a conversion. ``-`` as src (write) / dst (read): the canonical ``.npz`` on
    stdin / stdout. Framework output printed to stdout goes to stderr instead."""
    from ._proc import child_init, data_channel

    child_init()
    ap = argparse.ArgumentParser(prog="python -m onespec.convert")
    ap.add_argument("step", choices=["read", "write", "partial"])
    ap.add_argument("fmt")
    ap.add_argument("arch")
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("overrides")
    a = ap.parse_args(argv)
    data_out = data_channel("wb")
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
            state, info = read(a.fmt, a.arch, a.src, overrides)
            if a.dst == "-":
                import numpy as np
                buf = io.BytesIO()
                np.savez(buf, **state, **{"__report__": np.frombuffer(json.dumps(info).encode(), np.uint8)})
                data_out.write(buf.getvalue())
                data_out.flush()
            else:
                save_state(state, a.dst)
        else:
            spec = _spec(a.arch, overrides)
            if a.src == "-":
                import numpy as np
                with np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False) as z:
                    state = {k: z[k] for k in z.files if k != "__report__"}
                check_state(spec, state)
            else:
                state = load_state(a.src, spec)
            write(a.fmt, a.arch, state, a.dst, overrides)
    except (OnespecError, FileNotFoundError, ValueError) as err:
        print(f"onespec: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
