"""The numerics environment: what a report must record for its figures to be reproducible, and
the switches that change float results on GPU.

``describe`` records, per framework, its version, threads, device and determinism / TF32 flags
(each backend's ``numerics_environment``; its ``apply_numerics`` sets them). ``ONESPEC_TF32`` and
``ONESPEC_DETERMINISTIC`` (``0``/``1``, set by the CLI's ``--tf32`` and ``--deterministic``) are
applied to each framework when onespec loads it, in this process and in every child it starts,
so align's and conformance's workers share them.
onespec computes on the CPU, where neither switch changes a result; they are recorded so that a
report from a GPU run says how it was made.
"""
from __future__ import annotations

import os
import platform
import sys

import numpy as np

TF32, DETERMINISTIC = "ONESPEC_TF32", "ONESPEC_DETERMINISTIC"


def _flag(var: str) -> bool | None:
    v = os.environ.get(var)
    return None if v in (None, "") else v not in ("0", "off", "false")


def set_flags(tf32: bool | None = None, deterministic: bool | None = None) -> None:
    """Ask for TF32 on/off and deterministic kernels in every framework onespec loads from now on
    (here and in child processes); frameworks already loaded get them at once."""
    from .backends import backends, framework

    for var, v in ((TF32, tf32), (DETERMINISTIC, deterministic)):
        if v is not None:
            os.environ[var] = "1" if v else "0"
    for name in backends():
        fw = framework(name)
        if deterministic is not None:  # what a framework reads at import only
            for var in fw.deterministic_env:
                os.environ[var] = "1" if deterministic else "0"
        if fw.imports and fw.imports[0] in sys.modules:
            apply(name)


def apply(framework: str) -> None:
    """Apply ``ONESPEC_TF32`` / ``ONESPEC_DETERMINISTIC`` to ``framework`` (already imported)."""
    from .backends import backend_package

    tf32, det = _flag(TF32), _flag(DETERMINISTIC)
    if tf32 is not None or det is not None:
        backend_package(framework).apply_numerics(tf32, det)


def describe(frameworks=()) -> dict:
    """{"python", "numpy", "cpu_count", "omp_num_threads", "requested": {tf32, deterministic},
    framework: {version, threads, device, flags...}} for each of ``frameworks`` (imported here)."""
    from .backends import load_backend

    env = {"python": platform.python_version(), "numpy": np.__version__, "cpu_count": os.cpu_count(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
           "requested": {"tf32": _flag(TF32), "deterministic": _flag(DETERMINISTIC)}}
    for fw in frameworks:
        env[fw] = load_backend(fw).numerics_environment()
    return env
