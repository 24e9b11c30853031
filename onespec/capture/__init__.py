"""Capture: a model's own network (a framework's module, layer or cell) becomes an onespec spec
with its weights.

``capture(model, input_shape)`` asks the backend of the model's framework (``by_model``) for its
ops in execution order, each an onespec op placed in a node named like the module that ran it
(the backend's ``trace``; torch's exports the module with ``torch.export``, non-strict, default
IR; Paddle's and MindSpore's record the eager forward, ``record``), nests them as the modules nest (``structure``), and returns the spec with its canonical
state, whose tensor names are the model's own checkpoint keys. ``prove`` builds
the captured spec in each framework, in its own process, and compares it with the module's
outputs; ``onespec capture`` writes nothing unless that proof holds.
"""
from __future__ import annotations

from ..spec import ModelMeta
from .ir import CaptureError

__all__ = ["CaptureError", "capture", "framework_of", "original_names", "reference_outputs", "state_keys"]


def framework_of(model) -> str:
    """The framework ``model`` belongs to (one whose backend can trace it), else CaptureError."""
    from ..backends import by_model, framework, frameworks

    fw = by_model(model)
    if fw is None:
        known = [f"{n} ({framework(n).model_bases[0]})" for n in frameworks() if framework(n).model_bases]
        raise CaptureError([f"<root>: a {type(model).__module__}.{type(model).__qualname__} is not a model of a "
                            f"framework onespec captures from: {', '.join(known)}"])
    return fw


def capture(module, input_shape, name: str | None = None):
    """(ModelSpec, canonical state) of a framework's model (``framework_of``) run on one sample of
    ``input_shape`` (no batch dim). Raises :class:`CaptureError` listing every op or module that
    cannot be captured, each with its module path and source line."""
    from ..backends import load_backend
    from .structure import build_spec

    if not all(isinstance(d, int) and 0 < d <= 1 << 16 for d in input_shape) or len(input_shape) not in (1, 2, 3, 4):
        raise CaptureError([f"input shape {tuple(input_shape)} must be 1 to 4 positive ints (no batch dim)"])
    cls = type(module)
    meta = ModelMeta(family="captured", source=f"{cls.__module__}.{cls.__qualname__}")
    tr = load_backend(framework_of(module)).trace(module, tuple(input_shape))
    return build_spec(tr, name or cls.__name__, input_shape, meta)


def original_names(spec, framework: str) -> dict[str, str]:
    """canonical tensor name -> its name in the captured model's own checkpoint: the spec's alias,
    else the framework's own name for it (Paddle's ``_mean`` for ``running_mean``)."""
    from ..backends import framework as descriptor
    from ..weights import native_layout

    fw = descriptor(framework)
    return {c: spec.aliases.get(c, n) for c, (n, _) in native_layout(spec, fw.roles, fw.transposed).items()}


def reference_outputs(module, x):
    """The model's eval-mode outputs on ``x`` (numpy), a tuple for several."""
    from ..backends import load_backend
    return load_backend(framework_of(module)).reference_outputs(module, x)


def state_keys(module) -> list[str]:
    """The model's own checkpoint keys."""
    from ..backends import load_backend
    return load_backend(framework_of(module)).state_keys(module)
