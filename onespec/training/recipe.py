"""A training recipe: data, augmentation, optimizer, LR schedule, loss and run length, as one
pydantic model read from YAML (in the spirit of PaddleClas / MindCV configs) plus ``KEY=VALUE``
overrides with dotted keys (``optimizer.lr=0.01``). Unknown fields are errors.

The semantics are onespec's, the same in every framework (``optim``, ``schedule``):
- ``sgd`` / ``momentum``: ``buf = m * buf + g``; ``p -= lr * buf`` (Nesterov: ``p -= lr * (g + m * buf)``),
  no dampening; torch ``SGD``, Paddle ``Momentum`` and MindSpore ``Momentum`` all compute this.
  ``momentum`` is the MindSpore name; it defaults to ``decay_norm_and_bias: false`` as its recipes do.
- weight decay is *coupled* (L2 added to the gradient) for ``sgd``, ``momentum``, ``adam``, and
  *decoupled* for ``adamw`` (``p *= 1 - lr * wd`` before the Adam step, as torch ``AdamW``).
- Adam's epsilon is added *outside* the square root of the bias-corrected second moment
  (torch's placement; Paddle and MindSpore add ``eps * sqrt(1 - beta2^t)``, a different number).
"""
from __future__ import annotations

import os
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from ..data.transforms import Transform
from ..errors import MissingFileError, OnespecError, validation_message


class RecipeError(OnespecError, ValueError):
    """A recipe file or override is invalid; names the field."""


class _R(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True)


class Data(_R):
    source: Literal["digits", "imagefolder", "cifar10", "mat"] = "digits"
    root: str = Field("", description="data folder (imagefolder, cifar10) or the cube .mat (mat)")
    gt: str = Field("", description="ground-truth .mat for source mat")
    test_ratio: float = Field(0.2, gt=0, lt=1, description="held-out share when the data has no split")
    split_seed: int = Field(0, description="seed of the stratified split (HybridSN uses 345)")
    pca: PositiveInt = 30
    patch: PositiveInt = 25
    workers: int = Field(0, ge=0, description="decoding processes (0: in the training process)")
    prefetch: PositiveInt = 2

    @model_validator(mode="after")
    def _root(self):
        if self.source != "digits" and not self.root:
            raise ValueError(f"data.root is required for source {self.source}")
        if self.source == "mat" and not self.gt:
            raise ValueError("data.gt (the ground-truth .mat) is required for source mat")
        return self


class Optimizer(_R):
    name: Literal["sgd", "momentum", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0, description="base (peak) learning rate; the schedule scales it")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    decay_norm_and_bias: Optional[bool] = Field(
        None, description="apply weight decay to norm gamma/beta and biases (default: yes, except momentum)")

    @property
    def decays_norm_and_bias(self) -> bool:
        return self.decay_norm_and_bias if self.decay_norm_and_bias is not None else self.name != "momentum"


class Schedule(_R):
    name: Literal["constant", "step", "cosine", "onecycle"] = "cosine"
    by: Literal["step", "epoch"] = Field("step", description="granularity: a new LR every step or every epoch")
    warmup_epochs: float = Field(0, ge=0)
    warmup_start_lr: float = Field(0.0, ge=0)
    min_lr: float = Field(0.0, ge=0, description="cosine's final LR")
    milestones: list[int] = Field(default_factory=list, description="step: epochs where LR *= gamma")
    gamma: float = Field(0.1, gt=0)
    # one-cycle, torch OneCycleLR's parameters and defaults
    pct_start: float = Field(0.3, gt=0, lt=1)
    div_factor: float = Field(25.0, gt=0)
    final_div_factor: float = Field(1e4, gt=0)
    anneal: Literal["cos", "linear"] = "cos"
    three_phase: bool = False
    cycle_momentum: bool = True
    base_momentum: float = Field(0.85, ge=0, lt=1)
    max_momentum: float = Field(0.95, ge=0, lt=1)


class Head(_R):
    """A new classifier in place of the model's last Linear: ``Linear(h) - act - Dropout`` per
    hidden width, then ``Linear(classes)`` (the ShuffleNet transfer tutorial's head)."""
    hidden: list[PositiveInt] = Field(min_length=1)
    act: Literal["relu", "relu6", "hardswish", "swish", "tanh"] = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)


class Recipe(_R):
    """Every default is the digits recipe (``recipes/digits.yaml``): Adam 1e-3, cosine per step,
    5 epochs of batch 32 on scikit-learn's digits at 32x32; a recipe file overrides what it names."""
    model: str = Field("", description="zoo name, spec file (.json/.yaml) or module:function")
    overrides: dict = Field(default_factory=dict, description="zoo builder overrides, e.g. num_classes")
    image_size: Optional[PositiveInt] = Field(
        None, description="zoo models' input_size; None: the model's own, except 32 for the digits")
    data: Data = Field(default_factory=Data)
    train_transforms: Optional[list[Transform]] = None
    eval_transforms: Optional[list[Transform]] = None
    optimizer: Optimizer = Field(default_factory=Optimizer)
    schedule: Schedule = Field(default_factory=Schedule)
    head: Optional[Head] = None
    drop_last: bool = Field(True, description="drop the last, incomplete training batch")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    epochs: PositiveInt = 5
    batch_size: PositiveInt = 32
    eval_batch_size: Optional[PositiveInt] = None
    max_steps: Optional[PositiveInt] = Field(None, description="stop after this many steps in all (smoke runs)")
    seed: int = 0
    clip_grad_norm: Optional[float] = Field(None, gt=0)
    weights: str = Field("", description="checkpoint to start from (native, canonical, torchvision)")
    weights_format: str = ""
    freeze: list[str] = Field(default_factory=list, description="node-path prefixes kept fixed")
    checkpoint_every: PositiveInt = 1


def _set(doc: dict, dotted: str, value) -> None:
    keys = dotted.split(".")
    cur = doc
    for k in keys[:-1]:
        nxt = cur.get(k)
        if nxt is None:
            nxt = cur[k] = {}
        if not isinstance(nxt, dict):
            raise RecipeError(f"override {dotted}: {k} is not a section")
        cur = nxt
    cur[keys[-1]] = value


def load_recipe(path: str | None = None, overrides: dict | None = None, base: dict | None = None) -> Recipe:
    """Recipe from a YAML file (or the defaults) with dotted ``overrides`` applied on top."""
    import yaml

    doc: dict = dict(base or {})
    if path:
        if not os.path.isfile(path):
            raise MissingFileError(path, "no such recipe")
        try:
            with open(path, encoding="utf-8") as f:
                loaded = yaml.safe_load(f)  # plain data only: no Python objects from user files
        except yaml.YAMLError as err:
            raise RecipeError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise RecipeError(f"{path}: a recipe is a mapping of fields, not a {type(loaded).__name__}")
        doc.update(loaded or {})
    for k, v in (overrides or {}).items():
        _set(doc, k, list(v) if isinstance(v, tuple) else v)
    try:
        return Recipe.model_validate(doc)
    except ValidationError as err:
        raise RecipeError(f"{path or 'recipe'}: {validation_message(err)}") from None


def as_recipe(recipe: "Recipe | str | None", overrides: dict | None = None) -> Recipe:
    """A ``Recipe``, a YAML path or None (the defaults), with dotted ``overrides`` applied."""
    if isinstance(recipe, Recipe):
        return load_recipe(None, overrides, base=recipe.model_dump(exclude_unset=True)) if overrides else recipe
    return load_recipe(recipe, overrides)
