"""Spec -> one self-contained, readable source file for a framework (``codegen(spec, backend)``).

The file imports only the framework, numpy and the standard library; it declares one class per
distinct block kind (structurally identical subtrees: the same ops, names and nesting), whose
constructor takes the values that differ between the kind's instances (channels, strides, ...),
and builds each sequence of repeated blocks from a table of those values. Module attributes are
the spec's node names, so parameter names are onespec's native names and a checkpoint written by
onespec loads with the framework's own strict loader.

What each op becomes comes from the backend's codegen module (``onespec.backends.<fw>.codegen``):
the same classes and arguments as its emitter, so the generated network computes what onespec's
build computes. This package only finds the block kinds and lays out the text.
"""
from __future__ import annotations

import importlib.util
import os

from ..backends import FRAMEWORKS, check_backend
from ..errors import OnespecError
from ..spec import ModelSpec
from .layout import render

__all__ = ["codegen"]


def codegen(spec: ModelSpec, backend: str) -> str:
    """Python source of ``spec`` for ``backend`` (torch, paddle or mindspore)."""
    if not isinstance(spec, ModelSpec):
        raise OnespecError(f"codegen: expected a ModelSpec, got {type(spec).__name__}")
    check_backend(backend, FRAMEWORKS)
    return render(spec, backend_ops(backend))


_OPS: dict = {}


def backend_ops(backend: str):
    """``onespec/backends/<backend>/codegen.py``, loaded from its file: it only formats text, and
    importing it as a submodule would run the backend package's ``__init__``, which imports the
    framework (and paddle before mindspore in one process breaks mindspore)."""
    if backend not in _OPS:
        path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "backends", backend, "codegen.py")
        spec = importlib.util.spec_from_file_location(f"onespec.backends.{backend}.codegen", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _OPS[backend] = mod
    return _OPS[backend]
