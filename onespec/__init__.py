"""onespec: declare a CNN once, build it natively in PyTorch, MindSpore and PaddlePaddle.

``import onespec`` never imports a deep-learning framework; ``build`` loads only the backend
it is asked for.
"""
from __future__ import annotations

from typing import Any, Union

from .backends import BACKENDS, FRAMEWORKS
from .errors import BackendUnavailableError, MissingFileError, OnespecError, OverrideError, SpecError, UnknownModelError
from .models import ModelRef, load_spec, resolve
from .spec import Analysis, ModelSpec, analyze as _analyze, parse_spec
from .weights import init_state
from .zoo import get_spec, list_models

__version__ = "0.1.0"

Model = Union[ModelSpec, str, ModelRef]


def analyze(model: Model, **overrides: Any) -> Analysis:
    """Trainable params (``.params``), BN state (``.state``), MACs (``.macs``) and per-node rows
    of a zoo name, spec file, ``module:function`` or ``ModelSpec`` (``onespec.models``)."""
    return _analyze(resolve(model, overrides, origin="keyword argument"))


def build(model: Model, backend: str = "torch", **overrides: Any):
    """A native network: ``torch.nn.Module``, ``paddle.nn.Layer`` or ``mindspore.nn.Cell``, of a
    zoo name, spec file, ``module:function`` (runs that code) or ``ModelSpec``.

    Module paths equal spec node paths, so parameter names read ``features.fire2.squeeze.weight``
    in every framework.
    """
    from .backends import load_backend

    spec = resolve(model, overrides, origin="keyword argument")
    return load_backend(backend).build(spec)


__all__ = [
    "Analysis", "BACKENDS", "FRAMEWORKS", "BackendUnavailableError", "MissingFileError", "ModelRef", "ModelSpec",
    "OnespecError", "OverrideError", "SpecError", "UnknownModelError", "analyze", "build", "evaluate", "fold",
    "get_spec", "init_state", "list_models", "load_spec", "parse_spec", "resolve", "train",
]


def train(model: Model | None = None, recipe=None, *, backend: str = "torch", out=None, overrides=None,
          resume: bool = False, progress: bool = True):
    """Train a zoo model / spec file / ``module:function`` (runs that code) / ``ModelSpec`` (a
    ``ModelRef`` adds model overrides) with a recipe (a ``Recipe``, a YAML path, or None for the
    defaults: scikit-learn's digits) in ``backend``; ``overrides`` are dotted recipe fields.
    Returns the run's ``History`` (epoch and step rows, the run directory)."""
    from .training import train as _train
    return _train(model, recipe, backend=backend, out=out, overrides=overrides, resume=resume, progress=progress)


def fold(spec: ModelSpec, state):
    """The inference form of ``spec`` with canonical ``state``: BN folded into the preceding
    conv/linear, dropout and in-sequence identities removed (``onespec.folding``)."""
    from .folding import fold as _fold
    return _fold(spec, state)


def evaluate(model=None, weights: str = "", recipe=None, *, backend: str = "torch", out=None, overrides=None):
    """Top-1/top-5, per-class accuracy and confusion matrix of a checkpoint on the recipe's
    validation data; writes ``eval.json`` and ``confusion.png`` into ``out`` when given."""
    from .training import evaluate as _evaluate
    return _evaluate(model, weights, recipe, backend=backend, out=out, overrides=overrides)
