"""Backend loading. Each backend package (``torch``, ``paddle``, ``mindspore``) exposes the same
functions: ``build(spec)``, ``count(net)``, ``forward(net, x, record_shapes)``.

Framework imports happen here, lazily, and nowhere in ``onespec.spec`` / ``onespec.zoo``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType

from ..errors import BackendUnavailableError

BACKENDS = ("torch", "paddle", "mindspore")
_PACKAGES = {"torch": "torch", "paddle": "paddlepaddle", "mindspore": "mindspore"}

# MindSpore 2.x loads its CPU kernels against its own oneDNN; if paddle's oneDNN is loaded
# first the symbol lookup fails (undefined symbol: dnnl_threadpool_interop_stream_create).
IMPORT_CLASH = (
    "paddle was imported before mindspore in this process, and MindSpore cannot load its CPU kernels "
    "after paddle's oneDNN (undefined symbol dnnl_threadpool_interop_stream_create). Import mindspore "
    "(or onespec's mindspore backend) before paddle, or use one process per framework as "
    "`onespec conformance` does."
)


def _import_framework(name: str) -> None:
    if name == "mindspore" and "paddle" in sys.modules and "mindspore" not in sys.modules:
        raise BackendUnavailableError(IMPORT_CLASH)
    if (name == "paddle" and "paddle" not in sys.modules and "mindspore" not in sys.modules
            and importlib.util.find_spec("mindspore") and not os.environ.get("ONESPEC_NO_MINDSPORE_PRELOAD")):
        # Safe ordering: with both installed, load mindspore first so that a later mindspore
        # build in this process still works. Too late if the user imported paddle already;
        # then only a later mindspore build fails, with IMPORT_CLASH. Opt out with
        # ONESPEC_NO_MINDSPORE_PRELOAD=1.
        _import_framework("mindspore")
    try:
        importlib.import_module(name)
    except ImportError as err:
        if "dnnl" in str(err):
            raise BackendUnavailableError(IMPORT_CLASH) from err
        raise BackendUnavailableError(
            f"the {name} backend needs the {_PACKAGES[name]} package: pip install 'onespec[{name}]' ({err})"
        ) from err


def load_backend(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    _import_framework(name)
    return importlib.import_module(f"onespec.backends.{name}")
