"""The one model resolver: every command and the Python API turn a model reference into a
``ModelSpec`` here.

A model is named as one of:

- a **zoo name** (``squeezenet1_1``; ``onespec list``): built by its registered builder, with
  overrides (``num_classes``, ``width``, ``input_size``, ...) as the builder's keywords;
- a **spec file** (``.json``, ``.yaml`` or ``.yml``; docs/spec-format.md): the network exactly as
  written. Overrides do not apply; one is accepted only where it restates the file
  (``input_size`` equal to the file's input, ``num_classes`` equal to its output width), any
  other is refused, naming it and where it came from;
- **Python code**, ``module:function`` or ``path/to/file.py:function``: the function is imported
  and called, so this runs that code. It is accepted from the command line and the Python API
  only, never from a recipe (a recipe is data). The function is called with keyword arguments
  only and returns a ``ModelSpec``:

  * every override the user gave (``--set KEY=VALUE``, a recipe's ``overrides:`` and
    ``image_size``, which arrives as ``input_size``) is passed as that keyword; a function
    without a parameter of that name (and no ``**kwargs``) is refused with an error naming the
    keyword and its origin, before the function runs;
  * the values the data suggests (``num_classes``: the data's class count; ``input_size``:
    32 for scikit-learn's digits) are passed only when the function has such a parameter.

  For example ``def net(num_classes: int = 10, input_size: int = 32) -> ModelSpec``;
- a ``ModelSpec`` object (Python API only): used as it is, overrides refused as for a spec file.

Overrides are *explicit* (the user's: refused where they do not apply) or *defaults* (a
command's suggestion, such as the data's class count: applied where the model takes them,
dropped otherwise). Each carries its origin, which every refusal names.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

from .errors import MissingFileError, OnespecError, OverrideError, SpecError, UnknownModelError, validation_message
from .spec import ModelSpec
from .spec.model import parse_spec

SPEC_SUFFIXES = (".json", ".yaml", ".yml")
MAX_SPEC_BYTES = 64 << 20


class ModelError(OnespecError, ValueError):
    """A model reference cannot be resolved (bad code reference, a function that fails or
    returns something else than a ``ModelSpec``); names the reference."""


@dataclass(frozen=True)
class Override:
    """One override value and where it came from (``--set``, ``recipe overrides``, ...)."""
    value: Any
    origin: str


@dataclass(frozen=True)
class ModelRef:
    """A model the user named (command line, Python API) together with the user's model
    overrides, for commands that combine them with a recipe's (``train``, ``eval``, ``align``):
    these win over the recipe's."""
    model: Union[str, ModelSpec]
    overrides: Mapping[str, Any] = field(default_factory=dict)
    origin: str = "--set"


def kind(model: Union[str, ModelSpec]) -> str:
    """``spec`` (a ModelSpec), ``zoo``, ``file`` (a spec file path) or ``code`` (module:function)."""
    from .zoo import list_models

    if isinstance(model, ModelSpec):
        return "spec"
    if not isinstance(model, str) or not model:
        raise ModelError(f"a model is a zoo name, a spec file or module:function, not {model!r}")
    if model in list_models():
        return "zoo"
    if model.lower().endswith(SPEC_SUFFIXES):
        return "file"
    if ":" in model:
        return "code"
    return "zoo"  # not a registered name: ``entry`` says so, with the closest names


def load_spec(path: str) -> ModelSpec:
    """A ``ModelSpec`` from a spec file (``.json``, ``.yaml``, ``.yml``): an untrusted document,
    its size checked before it is read. Raises :class:`SpecError` naming the file."""
    from . import yamldoc

    if not os.path.isfile(path):
        raise MissingFileError(path, "no such spec file")
    size = os.path.getsize(path)
    if size > MAX_SPEC_BYTES:
        raise SpecError("", "document", f"{path}: {size:,} bytes exceeds the {MAX_SPEC_BYTES >> 20} MiB "
                                        "budget of a spec file")
    with open(path, "rb") as f:
        data = f.read(MAX_SPEC_BYTES + 1)
    if not path.lower().endswith((".yaml", ".yml")):
        try:
            return parse_spec(data)
        except SpecError as err:
            raise SpecError(err.path, err.rule, f"{path}: {err.detail}") from err.__cause__
    try:
        doc = yamldoc.parse(data, path)
    except yamldoc.YamlError as err:
        raise SpecError("", "document", str(err)) from None
    from pydantic import ValidationError
    try:
        return ModelSpec.model_validate(doc)
    except ValidationError as err:
        raise SpecError("", "document", f"{path}: {validation_message(err)}") from err
    except RecursionError:
        raise SpecError("", "document", f"{path}: spec document nested too deeply") from None


def _labelled(values: Optional[Mapping[str, Any]], origin: str) -> dict[str, Override]:
    return {k: v if isinstance(v, Override) else Override(v, origin) for k, v in (values or {}).items()}


def _show(key: str, o: Override) -> str:
    return f"{key}={o.value!r} ({o.origin})"


@contextlib.contextmanager
def _first_on_path(folder: str):
    """``folder`` first on ``sys.path`` for an import (unless it is there already)."""
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added:
            sys.path.remove(folder)


def load_code(ref: str, what: str = "model") -> Callable:
    """The callable named by ``module:function`` or ``path/to/file.py:function`` (imported: this
    runs the module's code). The current folder is searched first, as ``python -m`` does."""
    mod_name, sep, fn_name = ref.rpartition(":")
    if not sep or not mod_name or not fn_name.isidentifier():
        raise ModelError(f"{what} {ref!r}: expected module:function or path/to/file.py:function")
    try:
        if mod_name.endswith(".py") or os.sep in mod_name or "/" in mod_name:
            if not os.path.isfile(mod_name):
                raise MissingFileError(mod_name, f"{what} {ref}: no such Python file")
            spec = importlib.util.spec_from_file_location(os.path.basename(mod_name)[:-3] or "module", mod_name)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module  # as python runs a script: classes know their module
            with _first_on_path(os.path.dirname(os.path.abspath(mod_name))):  # it imports its siblings
                spec.loader.exec_module(module)
        else:
            with _first_on_path(os.getcwd()):
                module = importlib.import_module(mod_name)
        fn = getattr(module, fn_name)
    except OnespecError:
        raise
    except ModuleNotFoundError as err:
        raise ModelError(f"{what} {ref}: no module named {err.name!r} (searched the current folder and "
                         "sys.path; a file can be named as path/to/file.py:function)") from None
    except AttributeError:
        raise ModelError(f"{what} {ref}: module {mod_name} has no {fn_name!r}") from None
    except Exception as err:  # the module's own code failed while importing
        raise ModelError(f"{what} {ref}: importing {mod_name} raised {type(err).__name__}: {err}") from None
    if not callable(fn):
        raise ModelError(f"{what} {ref}: {fn_name} is a {type(fn).__name__}, not a function")
    return fn


def _from_code(ref: str, explicit: dict[str, Override], defaults: dict[str, Override]) -> ModelSpec:
    fn = load_code(ref)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    open_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    named = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, o in explicit.items():
        if not open_kw and key not in named:
            raise OverrideError(f"override {_show(key, o)}: {ref} takes no keyword {key!r} "
                                f"(its keywords: {', '.join(named) or 'none'})")
    kwargs = {k: o.value for k, o in defaults.items() if open_kw or k in named}
    kwargs.update({k: o.value for k, o in explicit.items()})
    try:
        spec = fn(**kwargs)
    except OnespecError:
        raise
    except Exception as err:  # the user's function: its failure, named, in one line
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ModelError(f"{ref}({args}) raised {type(err).__name__}: {err}") from err
    if not isinstance(spec, ModelSpec):
        from .backends import by_model
        fw = by_model(spec)
        hint = (f" (a {fw} model: `onespec capture {ref} --input-shape C,H,W -o DIR` makes its spec, "
                f"and `onespec port {ref} --input-shape C,H,W` ports it)") if fw else ""
        raise ModelError(f"{ref} returned a {type(spec).__name__}, not a ModelSpec{hint}")
    return spec


def _restates(spec: ModelSpec, key: str, value: Any) -> bool:
    """``key=value`` describes ``spec`` as it is (the one way an override fits a fixed spec)."""
    if key == "num_classes":
        return spec.output_shape == (value,)
    if key == "input_size":
        size = tuple(value) if isinstance(value, (list, tuple)) else (value,) * (len(spec.input_shape) - 1)
        return tuple(spec.input_shape[1:]) == size
    if key == "in_channels":
        return spec.input_shape[0] == value
    return False


def _fixed(spec: ModelSpec, what: str, explicit: dict[str, Override]) -> ModelSpec:
    for key, o in explicit.items():
        if not _restates(spec, key, o.value):
            has = {"num_classes": f"outputs {spec.output_shape}", "in_channels": f"takes {spec.input_shape}",
                   "input_size": f"takes {spec.input_shape}"}.get(key, "is built as written")
            raise OverrideError(f"override {_show(key, o)} does not apply to {what}, which {has}: a spec "
                                f"is not rebuilt by overrides; edit the spec or drop the override")
    return spec


def _from_zoo(name: str, explicit: dict[str, Override], defaults: dict[str, Override]) -> ModelSpec:
    from .zoo import entry, get_spec

    accepted = entry(name).accepted()
    for key, o in explicit.items():
        if key not in accepted:
            raise OverrideError(f"override {_show(key, o)}: {name} has no option {key!r} "
                                f"(its options: {', '.join(accepted)})")
    values = {k: o.value for k, o in defaults.items() if k in accepted}
    values.update({k: o.value for k, o in explicit.items()})
    return get_spec(name, **values)


def resolve(model: Union[str, ModelSpec, ModelRef], overrides: Optional[Mapping[str, Any]] = None, *,
            origin: str = "override", defaults: Optional[Mapping[str, Any]] = None, code: bool = True,
            num_classes: Optional[int] = None) -> ModelSpec:
    """The ``ModelSpec`` of ``model`` (a zoo name, spec file, ``module:function``, ``ModelSpec``
    or ``ModelRef``), see the module docstring.

    ``overrides``: explicit (values, or :class:`Override` with their own origin; plain values
    are labelled ``origin``); ``defaults``: applied where the model takes them; ``code``: whether
    ``module:function`` may run (False for a reference read from a file); ``num_classes``: the
    data's class count, a default and then a check of the output width."""
    explicit = _labelled(overrides, origin)
    if isinstance(model, ModelRef):
        explicit.update(_labelled(model.overrides, model.origin))
        model = model.model
    soft = _labelled(defaults, "default")
    if num_classes is not None:
        soft.setdefault("num_classes", Override(num_classes, "the data"))
    k = kind(model)
    if k == "spec":
        spec = _fixed(model, f"the ModelSpec {model.name}", explicit)
    elif k == "file":
        spec = _fixed(load_spec(model), f"the spec file {model}", explicit)
    elif k == "code":
        if not code:
            raise ModelError(f"model {model!r} is Python code (module:function), which a recipe may not name: a "
                             "recipe names zoo models and spec files; pass code on the command line or to the API")
        spec = _from_code(model, explicit, soft)
    else:
        try:
            spec = _from_zoo(model, explicit, soft)
        except UnknownModelError as err:
            inside = sorted((f != "spec.json", f) for f in os.listdir(model) if f.lower().endswith(SPEC_SUFFIXES)) \
                if os.path.isdir(model) else []
            inside = [f for _, f in inside]
            if os.path.isdir(model):  # a capture's or port's folder: its spec file is inside
                raise UnknownModelError(f"{model} is a folder, not a model" + (
                    f"; its spec file: {os.path.join(model, inside[0])}" if inside else
                    f" (a model is a zoo name, a spec file {'/'.join(SPEC_SUFFIXES)} or module:function)")) from None
            raise UnknownModelError(f"{err} (a model is a zoo name, a spec file {'/'.join(SPEC_SUFFIXES)} or "
                                    "module:function)") from None
    if num_classes is not None:  # a classifier for the data: train, eval and align
        from .spec.analysis import single_output
        single_output(spec, "training")
    if num_classes is not None and spec.output_shape != (num_classes,):
        raise ModelError(f"{spec.name} outputs {spec.output_shape}, the data has {num_classes} classes")
    return spec


@contextlib.contextmanager
def spec_file(spec: ModelSpec):
    """The path of a temporary JSON file holding ``spec`` (how a command hands a resolved model to
    its child processes), removed on leaving."""
    with tempfile.TemporaryDirectory(prefix="onespec-spec-") as d:
        path = os.path.join(d, "spec.json")
        with open(path, "w") as f:
            f.write(spec.model_dump_json())
        yield path


def recipe_overrides(recipe) -> tuple[dict[str, Override], dict[str, Override]]:
    """(explicit, defaults) model overrides a recipe carries: its ``overrides:`` and its
    ``image_size`` (as ``input_size``) are explicit; 32x32 for scikit-learn's digits (8x8
    images blown up to 224 only cost time) is a default, so a spec file keeps its own size and
    the default transforms resize the data to it."""
    explicit = _labelled(recipe.overrides, "recipe overrides")
    if recipe.image_size:
        explicit.setdefault("input_size", Override(recipe.image_size, "recipe image_size"))
    defaults = {}
    if recipe.data.source == "digits" and not recipe.image_size:
        defaults["input_size"] = Override(32, "the digits data's default size")
    return explicit, defaults


def for_recipe(model: Union[str, ModelSpec, ModelRef, None], recipe, num_classes: int) -> ModelSpec:
    """The network a recipe trains: ``model`` (default: the recipe's ``model``, which may not
    be code) with the recipe's overrides (the ``ModelRef``'s win), its classifier replaced by
    the recipe's ``head``, checked to output ``num_classes``."""
    explicit, defaults = recipe_overrides(recipe)
    if isinstance(model, ModelRef):
        explicit.update(_labelled(model.overrides, model.origin))
        model = model.model
    from_recipe = model is None
    if from_recipe:
        model = recipe.model
        if not model:
            raise ModelError("no model: name a zoo model, a spec file or module:function (or the recipe's model:)")
    spec = resolve(model, explicit, defaults=defaults, code=not from_recipe,
                   num_classes=None if recipe.head else num_classes)
    if recipe.head:
        spec = replace_head(spec, recipe.head, num_classes)
    if spec.output_shape != (num_classes,):
        raise ModelError(f"{spec.name} outputs {spec.output_shape}, the data has {num_classes} classes")
    return spec


def replace_head(spec: ModelSpec, head, num_classes: int) -> ModelSpec:
    """``spec`` with its last Linear replaced by ``head``'s MLP (``hidden`` widths, ``act``,
    ``dropout``; same node name, new children) ending in ``num_classes`` outputs."""
    from .spec.nodes import Act, Dropout, Linear, Sequential

    def swap(layers):
        for i in range(len(layers) - 1, -1, -1):
            node = layers[i]
            if isinstance(node, Linear):
                body = []
                for j, h in enumerate(head.hidden, 1):
                    body += [Linear(name=f"fc{j}", out_features=h), Act(name=f"{head.act}{j}", fn=head.act)]
                    if head.dropout:
                        body.append(Dropout(name=f"dropout{j}", p=head.dropout))
                body.append(Linear(name=f"fc{len(head.hidden) + 1}", out_features=num_classes))
                return layers[:i] + [Sequential(name=node.name, layers=body)] + layers[i + 1:]
            if isinstance(node, Sequential):
                inner = swap(list(node.layers))
                if inner is not None:
                    return layers[:i] + [node.model_copy(update={"layers": inner})] + layers[i + 1:]
            if hasattr(node, "children") and not isinstance(node, Sequential) and node.children():
                return None  # a head inside a parallel/residual branch is not a classifier head
        return None

    new = swap(list(spec.layers))
    if new is None:
        raise ModelError(f"recipe head: {spec.name} has no final Linear to replace")
    meta = spec.meta.model_copy(update={"num_classes": num_classes})
    return ModelSpec(name=spec.name, input_shape=spec.input_shape, layers=new, meta=meta)
