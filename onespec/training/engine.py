"""What a training run is made of besides its model (which ``onespec.models.for_recipe``
resolves and fits with the recipe's head): the data sources and their transforms, the starting
state (onespec's seeded init or a checkpoint) and the frozen paths, each checked before any
framework trains. The loop is ``trainer``, the run directory
``rundir``.
"""
from __future__ import annotations

import os

from .. import data as D
from ..backends.tree import under
from ..errors import OnespecError
from ..spec import ModelSpec
from ..weights import init_state, layout
from .recipe import Recipe


class TrainError(OnespecError, ValueError):
    """A training or evaluation run cannot start or continue; names what and where."""


# --------------------------------------------------------------------------------- inputs
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
