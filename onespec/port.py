"""``onespec port SOURCE --to FW``: a model and its checkpoint as a directory a user can publish.

The checkpoint (a torchvision state dict, any framework's, or a canonical file) is read into
onespec's canonical state; the framework's source is generated (``onespec.codegen``); the
generated file, run where onespec cannot be imported, loads the native checkpoint with the
framework's own strict loader and is compared with onespec's build in that framework and with
onespec's build of the same state in the source's framework (the checkpoint's; torch for a
captured module) on the example input or the user's. Only when every comparison is within tolerance does ``DIR`` receive ``model.py``,
``weights.<ext>``, ``README.md`` and ``port.json``; otherwise ``DIR`` receives the report alone
and the command exits 1.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from .codegen import backend_ops, codegen
from .codegen.layout import conventions
from .codegen.verify import TOLERANCE, check, load_outputs, rel_err
from .errors import OnespecError

CROSS_TOLERANCE = 1e-4  # against another framework's build: float32 kernels differ in rounding
MAX_INPUT_BYTES = 1 << 30


class PortError(OnespecError):
    pass


def _input(spec, path: str | None) -> tuple[np.ndarray, str]:
    if path is None:
        x = np.random.default_rng(0).standard_normal((2, *spec.input_shape)).astype(np.float32)
        return x, "a random example input (standard normal, seed 0, batch 2)"
    if not os.path.isfile(path):
        raise PortError(f"{path}: no such input file")
    if os.path.getsize(path) > MAX_INPUT_BYTES:
        raise PortError(f"{path}: {os.path.getsize(path) >> 20} MiB is more than an input may be (1 GiB)")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise PortError(f"{path} is not a .npy array ({err})") from None
    if x.ndim == len(spec.input_shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(spec.input_shape) or not np.isfinite(x).all():
        raise PortError(f"{path}: shape {x.shape} does not fit the model's input (N, "
                        f"{', '.join(map(str, spec.input_shape))}) or holds NaN/inf")
    return x.astype(np.float32), f"the user's input {os.path.basename(path)} (shape {tuple(x.shape)})"


def _state(spec, weights: str | None) -> tuple[dict, str]:
    from .weights import init_state
    if weights is None:
        return init_state(spec, seed=0), "no checkpoint: onespec's deterministic initialisation (seed 0)"
    from .convert import read_for
    state, skipped, missing, _ = read_for(spec, weights, here="numpy")
    if skipped or missing:
        raise PortError(f"{weights} does not fit {spec.name}: " + ", ".join((skipped + missing)[:5])
                        + f" ({len(skipped + missing)} tensors unmatched)")
    h = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    return state, f"{os.path.basename(weights)} (sha256 {digest[:16]}...)"


def source_framework(weights: str | None, captured) -> str:
    """The framework the source computes in: a captured model's (``onespec.capture.framework_of``),
    else the checkpoint's by its extension, else the first built-in framework."""
    from .backends import by_extension, frameworks
    if captured is not None:
        from .capture import framework_of
        return framework_of(captured[1])
    return (by_extension(weights) if weights else None) or frameworks()[0]


def _source_reference(spec, state, x, work: str, fw: str) -> np.ndarray:
    """onespec's build of the state in the source's framework ``fw`` on ``x``."""
    from .backends import framework
    from .codegen.verify import _ONESPEC, _ROOT, _run
    names = ("spec.json", "state.npz", "w" + framework(fw).extensions[0], "x.npy", "y.npz", "cases.json")
    paths = [os.path.join(work, n) for n in names]
    with open(paths[0], "w") as f:
        f.write(spec.model_dump_json())
    np.savez(paths[1], **state)
    np.save(paths[3], x)
    with open(paths[5], "w") as f:
        json.dump([paths[:5]], f)
    _run(["-c", _ONESPEC, _ROOT, fw, paths[5]], f"onespec's {fw} build")
    y = load_outputs(paths[4])
    for p in paths:
        os.remove(p)
    return y


def port(spec, backend: str, out_dir: str, weights: str | None = None, input_path: str | None = None,
         source_name: str = "", captured=None) -> dict:
    """Port ``spec`` with ``weights`` to ``backend`` into ``out_dir``; returns the report (its
    ``ok`` says whether the files were written). ``captured``: ``(state, model)`` of a captured
    model (torch, paddle or mindspore), whose own outputs are then a reference too."""
    ops = backend_ops(backend)
    x, input_said = _input(spec, input_path)
    if captured is not None:
        state, weights_said = captured[0], f"the captured module's own parameters ({source_name})"
    else:
        state, weights_said = _state(spec, weights)
    source = codegen(spec, backend)
    os.makedirs(out_dir, exist_ok=True)
    if any(os.path.exists(os.path.join(out_dir, n)) for n in ("model.py", "port.json")):
        raise PortError(f"{out_dir} already holds a port (model.py or port.json); choose an empty directory")
    work = tempfile.mkdtemp(prefix=".onespec-port-", dir=out_dir)
    try:
        r = check(spec, backend, work, state, x, source)
        rows = [(f"generated {backend}, eager", f"onespec's {backend} build", r["eager"], TOLERANCE),
                (f"generated {backend}, {r['compiler']}", r["compiled_against"], r["compiled"], TOLERANCE)]
        src = source_framework(weights, captured)
        if backend != src:
            ref = _source_reference(spec, state, x, work, src)
            rows.append((f"generated {backend}, eager", f"onespec's {src} build (the source's framework)",
                         rel_err(_generated_output(r), ref), CROSS_TOLERANCE))
        if captured is not None:
            from .capture import reference_outputs
            rows.append((f"generated {backend}, eager", f"the original module ({source_name})",
                         rel_err(_generated_output(r), reference_outputs(captured[1], x)),
                         CROSS_TOLERANCE))
        ok = all(err <= tol for _, _, err, tol in rows)
        report = {"model": spec.name, "source": source_name or spec.name, "framework": r["framework"],
                  "checkpoint": weights_said, "input": input_said, "loader": r["loader"],
                  "compiler": r["compiler"], "ok": ok,
                  "rows": [{"output": a, "against": b, "max_rel_err": e, "tolerance": t, "ok": e <= t}
                           for a, b, e, t in rows]}
        readme = _readme(spec, ops, report, backend)
        if not ok:
            _write(os.path.join(out_dir, "port-report.md"), readme)
            return report
        shutil.move(r["model"], os.path.join(out_dir, "model.py"))
        shutil.move(r["weights"], os.path.join(out_dir, f"weights.{ops.WEIGHTS_EXT}"))
        _write(os.path.join(out_dir, "README.md"), readme)
        _write(os.path.join(out_dir, "port.json"), json.dumps(report, indent=1) + "\n")
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _generated_output(r: dict):
    return load_outputs(r["eager_output"])


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _readme(spec, ops, report: dict, backend: str) -> str:
    meta = spec.meta
    rows = "\n".join(f"| {r['output']} | {r['against']} | {r['max_rel_err']:.2e} | {r['tolerance']:.0e} | "
                     f"{'yes' if r['ok'] else 'NO'} |" for r in report["rows"])
    status = "passed" if report["ok"] else "FAILED: nothing but this report was written"
    return f"""# {spec.name} for {report['framework']}

Ported by onespec from `{report['source']}` ({meta.family}; {meta.paper or 'no paper recorded'};
structure of {meta.source or 'its spec'}), weights from {report['checkpoint']}.

## Check ({status})

The generated `model.py` ran in a process where onespec could not be imported, loaded
`weights.{ops.WEIGHTS_EXT}` with {report['loader']}, and was run on {report['input']}, eager and
compiled ({report['compiler']}). Relative error: the largest absolute difference over the largest
absolute value of the reference output.

| output | against | max rel. error | tolerance | within |
|---|---|---|---|---|
{rows}

## Loading it

```python
{ops.LOAD_EXAMPLE}
```

Input: float32, shape (N, {', '.join(map(str, spec.input_shape))}), channels first.

## Conventions translated from onespec's spec (which follows torch's)

""" + "\n".join(f"- {c}" for c in conventions(spec, ops)) + "\n"
