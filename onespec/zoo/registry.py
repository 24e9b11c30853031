"""The one registry of named architectures. Names follow torchvision where it has the model."""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import ValidationError

from ..errors import OverrideError, SpecError, UnknownModelError
from ..spec import ModelSpec

Builder = Callable[..., ModelSpec]


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Builder
    defaults: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

    def accepted(self) -> list[str]:
        sig = inspect.signature(self.builder)
        return [p for p in sig.parameters if p not in self.defaults and p != "name"]


_REGISTRY: dict[str, Entry] = {}


def register(name: str, builder: Builder, summary: str = "", **defaults: Any) -> None:
    """Register ``name`` -> ``builder(**defaults, **overrides)``. A duplicate name raises."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    params = inspect.signature(builder).parameters
    unknown = set(defaults) - set(params)
    if unknown:
        raise TypeError(f"{name}: builder {builder.__name__} takes no {sorted(unknown)}")
    _REGISTRY[name] = Entry(name, builder, dict(defaults), summary)


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def entry(name: str) -> Entry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see onespec.list_models()"
        raise UnknownModelError(f"unknown model {name!r}{hint}") from None


def get_spec(name: str, **overrides: Any) -> ModelSpec:
    """The validated spec of a zoo model. Overrides: ``num_classes``, ``width``, ``input_size``
    (int or (H, W)), ``in_channels`` and family-specific knobs (see ``onespec show NAME``)."""
    e = entry(name)
    accepted = e.accepted()
    bad = [k for k in overrides if k not in accepted]
    if bad:
        raise OverrideError(f"{name}: unknown override(s) {bad}; accepted: {accepted}")
    try:
        return e.builder(name=name, **{**e.defaults, **overrides})
    except OverrideError:
        raise
    except (SpecError, ValidationError, TypeError, ValueError, OverflowError, ZeroDivisionError) as err:
        # a builder fed a value of the wrong kind (groups=[1], width=inf) fails inside its
        # arithmetic; the override is what the user controls, so it is named
        raise OverrideError(f"{name} with {overrides}: {type(err).__name__}: {err}") from err
