"""The one registry of named architectures. Names follow torchvision where it has the model."""
from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import ValidationError

from ..errors import OverrideError, SpecError, UnknownModelError, validation_message
from ..spec import ModelSpec

Builder = Callable[..., ModelSpec]


@dataclass(frozen=True)
class Reference:
    """A published figure for a model: trainable ``params`` and ``macs`` (millions) of the
    configuration ``overrides``, from ``source``. ``*_rtol`` 0 means exact (a library's count);
    papers round (1.9M, 137 MFLOPs), so theirs carry the rounding as a tolerance."""
    source: str
    params: int | None = None
    params_rtol: float = 0.0
    macs: float | None = None
    macs_rtol: float = 0.0
    overrides: dict[str, Any] = field(default_factory=dict)

    def problems(self, name: str) -> list[str]:
        from ..spec import analyze

        a = analyze(get_spec(name, **self.overrides))
        out = []
        for what, got, want, rtol in (("params", a.params, self.params, self.params_rtol),
                                      ("MACs (M)", a.macs / 1e6, self.macs, self.macs_rtol)):
            if want is not None and abs(got - want) > rtol * abs(want):
                out.append(f"{name}{self.overrides or ''}: {what} {got:,} vs {want:,} ({self.source}, rtol {rtol})")
        return out


@dataclass(frozen=True)
class Import:
    """How a library's checkpoints of a model are read: the name-map ``rule`` (an
    ``onespec.importers.Rule``, written in the family's module) and the model ``overrides`` its
    layout needs (timm's SE-ResNets: ``se_divisor=8``), so that the import is exact; ``model``: the library's name for it
    (default: the zoo name), which the tests build; ``scales``: canonical tensor -> factor
    applied on import, where the library's eval network scales an activation that onespec's
    does not (Paddle's ``Dropout(mode="downscale_in_infer")`` multiplies by 1 - p at inference:
    folded into the next layer's weight)."""
    rule: Callable[[Any, str], str]
    overrides: dict[str, Any] = field(default_factory=dict)
    model: str = ""
    scales: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Entry:
    """A registered architecture: its builder and defaults, and what we claim about it:
    ``references`` (published figures, checked for every model by one generic test) and
    ``importers`` (library name -> :class:`Import`: its name-map rule and the options its layout needs)."""
    name: str
    builder: Builder
    defaults: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    references: tuple[Reference, ...] = ()
    importers: dict[str, Import] = field(default_factory=dict)

    def accepted(self) -> list[str]:
        sig = inspect.signature(self.builder)
        return [p for p in sig.parameters if p not in self.defaults and p != "name"]


_REGISTRY: dict[str, Entry] = {}


def register(name: str, builder: Builder, summary: str = "", *, references: tuple[Reference, ...] = (),
             importers: dict[str, Callable | Import] | None = None, **defaults: Any) -> None:
    """Register ``name`` -> ``builder(**defaults, **overrides)`` with its reference figures and
    importer name maps. A duplicate name raises."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    params = inspect.signature(builder).parameters
    unknown = set(defaults) - set(params)
    if unknown:
        raise TypeError(f"{name}: builder {builder.__name__} takes no {sorted(unknown)}")
    imports = {lib: imp if isinstance(imp, Import) else Import(imp) for lib, imp in (importers or {}).items()}
    _REGISTRY[name] = Entry(name, builder, dict(defaults), summary, tuple(references), imports)


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
    except ValidationError as err:
        raise OverrideError(f"{name} with {overrides}: {validation_message(err)}") from err
    except SpecError as err:
        raise OverrideError(f"{name} with {overrides}: {err}") from err
    except (TypeError, ValueError, OverflowError, ZeroDivisionError) as err:
        # a builder fed a value of the wrong kind (groups=[1], width=inf) fails inside its
        # arithmetic; the override is what the user controls, so it is named
        raise OverrideError(f"{name} with {overrides}: {type(err).__name__}: {err}") from err
