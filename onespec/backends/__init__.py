"""Backends: one package per framework (``torch``, ``paddle``, ``mindspore``) and the float64
``numpy`` reference, each implementing :class:`Backend` with the same module names.

``FRAMEWORKS`` and ``BACKENDS`` are the one list of them that everything imports (the CLI's
choices, conformance, convert and the tests). Framework imports happen here, lazily, and nowhere
in ``onespec.spec`` / ``onespec.zoo``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any, Mapping, Protocol

import numpy as np

from ..errors import BackendUnavailableError, OnespecError

FRAMEWORKS = ("torch", "paddle", "mindspore")
BACKENDS = FRAMEWORKS + ("numpy",)
_PACKAGES = {"torch": "torch", "paddle": "paddlepaddle", "mindspore": "mindspore", "numpy": "numpy"}


class Backend(Protocol):
    """What every backend module provides (``onespec.backends.<name>``). ``net`` is the native
    network ``build`` returned; states are canonical (``onespec.weights``)."""

    def build(self, spec) -> Any:
        """Native network whose module paths are the spec's node paths."""

    def count(self, net) -> tuple[int, int]:
        """(trainable parameters, non-trainable state such as BN running statistics)."""

    def forward(self, net, x: np.ndarray, record_shapes: bool = False) -> tuple[np.ndarray, dict[str, tuple]]:
        """Eval-mode output and, with ``record_shapes``, {module path: output shape without batch}."""

    def static_forward(self, net, x: np.ndarray) -> np.ndarray:
        """Eval-mode output of the compiled program (torch.export, paddle.jit.to_static, GRAPH_MODE)."""

    def node_io(self, net, x: np.ndarray, train: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{module path: (its input, its output)} for every module in one eval- or train-mode
        forward (``onespec diff``; numpy: eval mode only)."""

    def run_node(self, net, path: str, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Output of the module at ``path`` alone, on ``x``."""

    def node_vjp(self, net, spec, path: str, x: np.ndarray, gy: np.ndarray, train: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The module at ``path`` (``""``: the network) alone on ``x``, backward from output gradient
        ``gy``: (output, input gradient, canonical {tensor: gradient}) (numpy: no autograd, raises)."""

    def param_names(self, net) -> list[str]:
        """Native names of every parameter and state tensor (what a native checkpoint holds)."""

    def train_step(self, net, x: np.ndarray, r: np.ndarray, lr: float) -> float:
        """One plain-SGD step in train mode on ``sum(net(x) * r)``; returns the loss."""

    def native_names(self, spec) -> dict[str, str]:
        """Canonical tensor name -> native name."""

    def load_state(self, net, spec, state: Mapping[str, np.ndarray]) -> None:
        """Load a canonical state; everything is validated before any tensor changes."""

    def get_state(self, net, spec) -> dict[str, np.ndarray]:
        """The canonical state of ``net``."""

    def save(self, net, path: str) -> None:
        """Native checkpoint at ``path`` (any name): a complete file or the old file untouched."""

    def read(self, path: str) -> dict[str, np.ndarray]:
        """A native checkpoint's tensors by native name, without executing anything in the file."""

    def load(self, net, path: str) -> None:
        """Load a native checkpoint into ``net``; checked completely first."""


# MindSpore 2.x loads its CPU kernels against its own oneDNN; if paddle's oneDNN is loaded
# first the symbol lookup fails (undefined symbol: dnnl_threadpool_interop_stream_create).
IMPORT_CLASH = (
    "paddle was imported before mindspore in this process, and MindSpore cannot load its CPU kernels "
    "after paddle's oneDNN (undefined symbol dnnl_threadpool_interop_stream_create). Import mindspore "
    "(or onespec's mindspore backend) before paddle, or use one process per framework as "
    "`onespec conformance` does."
)


def _import_framework(name: str) -> None:
    if name == "numpy":
        return
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


class UnknownBackendError(OnespecError, ValueError):
    pass


def check_backend(name: str, allowed: tuple[str, ...] = BACKENDS) -> str:
    if name not in allowed:
        raise UnknownBackendError(f"unknown backend {name!r}; choose one of {', '.join(allowed)}")
    return name


def load_backend(name: str) -> ModuleType:
    from ..environment import apply

    check_backend(name)
    _import_framework(name)
    apply(name)  # the TF32 / determinism switches asked for (ONESPEC_TF32, ONESPEC_DETERMINISTIC)
    return importlib.import_module(f"onespec.backends.{name}")
