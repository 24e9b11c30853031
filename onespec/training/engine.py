"""What a training run is made of: the model (resolved, its head replaced), the data sources and
their transforms, the starting state (onespec's seeded init or a checkpoint) and the frozen
paths, each checked before any framework trains. The loop is ``trainer``, the run directory
``rundir``.
"""
from __future__ import annotations

import importlib
import json
import os

from .. import data as D
from ..backends.tree import under
from ..errors import OnespecError, OverrideError
from ..spec import ModelSpec
from ..weights import init_state, layout
from .recipe import Recipe


class TrainError(OnespecError, ValueError):
    """A training or evaluation run cannot start or continue; names what and where."""


# --------------------------------------------------------------------------------- resolution
def resolve_model(model: str, overrides: dict | None = None, num_classes: int | None = None) -> ModelSpec:
    """A zoo name (``num_classes`` filled in from the data unless given), a spec file
    (``.json``/``.yaml``/``.yml``) or ``module:function`` returning a ``ModelSpec``."""
    from ..spec import parse_spec
    from ..zoo import get_spec, list_models

    overrides = dict(overrides or {})
    if not model:
        raise TrainError("no model: name a zoo model, a spec file or module:function")
    if model in list_models():
        if num_classes is not None and "num_classes" not in overrides:
            overrides["num_classes"] = num_classes
        spec = get_spec(model, **overrides)
    elif os.path.isfile(model):
        if overrides:
            raise OverrideError(f"overrides apply to zoo models, not to the spec file {model}")
        with open(model, "rb") as f:
            text = f.read()
        if model.endswith((".yaml", ".yml")):
            import yaml
            try:
                text = json.dumps(yaml.safe_load(text))
            except yaml.YAMLError as err:
                raise TrainError(f"{model}: not valid YAML ({str(err).splitlines()[0]})") from None
        spec = parse_spec(text)
    elif ":" in model:
        mod, _, fn = model.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as err:
            raise TrainError(f"cannot load {model}: {err}") from None
        spec = obj(**overrides)
        if not isinstance(spec, ModelSpec):
            raise TrainError(f"{model} returned a {type(spec).__name__}, not a ModelSpec")
    else:
        from ..errors import UnknownModelError
        raise UnknownModelError(f"{model!r} is neither a zoo model (onespec list), a spec file nor module:function")
    if num_classes is not None and spec.output_shape != (num_classes,):
        raise TrainError(f"{spec.name} outputs {spec.output_shape}, the data has {num_classes} classes")
    return spec


def replace_head(spec: ModelSpec, head, num_classes: int) -> ModelSpec:
    """``spec`` with its last Linear replaced by ``head``'s MLP (same node name, new children)."""
    from ..spec.nodes import Act, Dropout, Linear, Sequential

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
        raise TrainError(f"recipe head: {spec.name} has no final Linear to replace")
    meta = spec.meta.model_copy(update={"num_classes": num_classes})
    return ModelSpec(name=spec.name, input_shape=spec.input_shape, layers=new, meta=meta)


def _model_overrides(recipe: Recipe) -> dict:
    """The recipe's zoo overrides plus ``input_size`` from ``image_size`` (digits: 32 by default,
    as 8x8 digits blown up to 224 only cost time)."""
    ov = dict(recipe.overrides)
    size = recipe.image_size or (32 if recipe.data.source == "digits" else None)
    if size and "input_size" not in ov:
        ov["input_size"] = size
    return ov


def open_data(recipe: Recipe):
    """(train source, validation source), every file checked."""
    d = recipe.data
    if d.source == "digits":
        return D.digits(d.split_seed, d.test_ratio)
    if d.source == "imagefolder":
        return D.image_folder(d.root, d.split_seed, d.test_ratio)
    if d.source == "cifar10":
        return D.cifar10(d.root)
    return D.mat_cube(d.root, d.gt, d.pca, d.patch, d.test_ratio, d.split_seed)


def transforms_for(recipe: Recipe, spec: ModelSpec, train: bool):
    """The recipe's transforms; by default resize + center crop to the model's input size and the
    train list's ``normalize`` (or none) for evaluation."""
    given = recipe.train_transforms if train else recipe.eval_transforms
    if given is not None:
        return tuple(given)
    size = spec.input_shape[-1]
    norm = [t for t in (recipe.train_transforms or []) if t.op == "normalize"]
    base = [D.Resize(size=size), D.CenterCrop(size=size)]
    if train and recipe.train_transforms is None:
        return tuple(base + [D.Normalize()])
    return tuple(base + (norm or [D.Normalize()]))


def model_for(model: "str | ModelSpec | None", recipe: Recipe, num_classes: int) -> ModelSpec:
    """The network a recipe trains: ``model`` (a ``ModelSpec``, or resolved by ``resolve_model``,
    default the recipe's), its classifier replaced by the recipe's ``head``, checked to output
    ``num_classes``."""
    if isinstance(model, ModelSpec):
        spec = model
    else:
        spec = resolve_model(model or recipe.model, _model_overrides(recipe), None if recipe.head else num_classes)
    if recipe.head:
        spec = replace_head(spec, recipe.head, num_classes)
    if spec.output_shape != (num_classes,):
        raise TrainError(f"{spec.name} outputs {spec.output_shape}, the data has {num_classes} classes")
    return spec


def check_inputs(src, tf, spec: ModelSpec, what: str) -> None:
    """The first sample, after the transforms, has the model's input shape."""
    x, _ = D.make_batch(src, tf, 0, 0, [0])
    if tuple(x.shape[1:]) != tuple(spec.input_shape):
        raise TrainError(f"{what} samples are {x.shape[1:]} after the transforms, {spec.name} takes "
                         f"{tuple(spec.input_shape)}: set the transform sizes or the model's input_size")


def frozen_paths(spec: ModelSpec, prefixes) -> tuple[str, ...]:
    """The recipe's freeze prefixes, each a node of ``spec``."""
    from ..spec import trace
    paths = {r.path for r in trace(spec)}
    for p in prefixes:
        if p not in paths:
            raise TrainError(f"--freeze {p}: {spec.name} has no node {p!r} (see onespec show {spec.name})")
    return tuple(prefixes)


def load_start(spec: ModelSpec, recipe: Recipe, backend: str) -> tuple[dict, list[str]]:
    """Initial canonical state: onespec's seeded init, overlaid with the recipe's checkpoint."""
    from ..convert import read_for

    state = init_state(spec, recipe.seed, scheme="train")
    if not recipe.weights:
        return state, []
    loaded, skipped, missing, unexpected = read_for(spec, recipe.weights, recipe.weights_format or None, here=backend)
    check_fits(spec, recipe.weights, layout(spec), loaded, skipped, missing, unexpected, partial=True)
    frozen_skipped = [s.split(" ")[0] for s in skipped + missing if under(s.split(" ")[0], recipe.freeze)]
    if frozen_skipped:
        raise TrainError(f"{recipe.weights} has other shapes for frozen tensors, which would stay at their "
                         f"random init: {', '.join(frozen_skipped[:6])}")
    state.update(loaded)
    return state, (skipped + [f"{m} (not in the file)" for m in missing]
                   + [f"{u} (in the file, not in the model)" for u in unexpected])


def check_fits(spec, path, want, loaded, skipped, missing, unexpected, partial: bool) -> None:
    """A checkpoint of this architecture: every tensor named, none left over. With ``partial``
    (transfer learning: a new head) what does not fit is skipped and listed, as long as most of
    the model's tensors load; fewer means another architecture, an error."""
    if (not partial and (missing or unexpected or skipped)) or len(loaded) * 2 < len(want):
        parts = [f"{label}: {', '.join(items[:4])}{' ...' if len(items) > 4 else ''} ({len(items)})"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("other shape", skipped))
                 if items]
        raise TrainError(f"{path} is not a checkpoint of {spec.name} ({len(loaded)} of {len(want)} tensors fit): "
                         + "; ".join(parts))
