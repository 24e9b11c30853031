"""Capture: a model's own torch module becomes an onespec spec with its weights.

``capture(module, input_shape)`` exports the module (``torch.export``, non-strict, default IR),
turns each op into an onespec op inside a node named like the module that ran it
(``trace``), nests them as the modules nest (``structure``), and returns the spec with its
canonical state, whose tensor names are the module's own ``state_dict`` keys. ``prove`` builds
the captured spec in each framework, in its own process, and compares it with the module's
outputs; ``onespec capture`` writes nothing unless that proof holds.
"""
from __future__ import annotations

from ..spec import ModelMeta
from .trace import CaptureError

__all__ = ["CaptureError", "capture", "reference_outputs"]


def capture(module, input_shape, name: str | None = None):
    """(ModelSpec, canonical state) of a ``torch.nn.Module`` run on one sample of ``input_shape``
    (no batch dim). Raises :class:`CaptureError` listing every op or module that cannot be
    captured, each with its module path and source line."""
    from .structure import build_spec
    from .trace import trace

    if not all(isinstance(d, int) and 0 < d <= 1 << 16 for d in input_shape) or len(input_shape) not in (1, 2, 3, 4):
        raise CaptureError([f"input shape {tuple(input_shape)} must be 1 to 4 positive ints (no batch dim)"])
    cls = type(module)
    meta = ModelMeta(family="captured", source=f"{cls.__module__}.{cls.__qualname__}")
    tr = trace(module, tuple(input_shape))
    return build_spec(tr, name or cls.__name__, input_shape, meta)


def reference_outputs(module, x):
    """The module's eval-mode outputs on ``x`` (numpy), a tuple for several."""
    import torch

    with torch.no_grad():
        y = module.eval()(torch.from_numpy(x))
    return tuple(t.numpy() for t in y) if isinstance(y, (tuple, list)) else y.numpy()

