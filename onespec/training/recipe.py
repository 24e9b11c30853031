"""A training recipe: data, augmentation, optimizer, LR schedule, loss and run length, as one
pydantic model read from YAML (in the spirit of PaddleClas / MindCV configs) plus ``KEY=VALUE``
overrides with dotted keys (``optimizer.lr=0.01``). Unknown fields are errors.

A recipe is data: reading one runs no code. Its ``model`` names a zoo model or a spec file,
never ``module:function`` (Python code runs only when named on the command line or passed to
the Python API). Every number has a range, so a mistyped or hostile value (``epochs: 1e8``, a
crop padding of a million, a negative or NaN rate) is refused naming the field, before any
data is read. The YAML reader (``onespec.yamldoc``) refuses duplicate keys and aliases.

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

from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..data.transforms import Transform
from ..errors import OnespecError, validation_message


class RecipeError(OnespecError, ValueError):
    """A recipe file or override is invalid; names the field."""


# ranges wide enough for any real run, narrow enough that a typo cannot ask for years of work
Count = Annotated[int, Field(ge=1, le=1_000_000)]
Epochs = Annotated[int, Field(ge=1, le=100_000)]
Size = Annotated[int, Field(ge=1, le=16_384)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
MAX_PIXELS = 16_384  # a transform's size or padding


class _R(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=True)


class Data(_R):
    source: Literal["digits", "imagefolder", "cifar10", "mat"] = "digits"
    root: str = Field("", description="data folder (imagefolder, cifar10) or the cube .mat (mat)")
    gt: str = Field("", description="ground-truth .mat for source mat")
    test_ratio: float = Field(0.2, gt=0, lt=1, description="held-out share when the data has no split")
    split_seed: Seed = Field(0, description="seed of the stratified split (HybridSN uses 345)")
    pca: int = Field(30, ge=1, le=4096)
    patch: int = Field(25, ge=1, le=1024)
    workers: int = Field(0, ge=0, le=256, description="decoding processes (0: in the training process)")
    prefetch: int = Field(2, ge=1, le=64)

    @model_validator(mode="after")
    def _root(self):
        if self.source != "digits" and not self.root:
            raise ValueError(f"data.root is required for source {self.source}")
        if self.source == "mat" and not self.gt:
            raise ValueError("data.gt (the ground-truth .mat) is required for source mat")
        return self


class Optimizer(_R):
    name: Literal["sgd", "momentum", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0, le=1e3, description="base (peak) learning rate; the schedule scales it")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[Annotated[float, Field(ge=0, lt=1)], Annotated[float, Field(ge=0, lt=1)]] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    decay_norm_and_bias: Optional[bool] = Field(
        None, description="apply weight decay to norm gamma/beta and biases (default: yes, except momentum)")

    @property
    def decays_norm_and_bias(self) -> bool:
        return self.decay_norm_and_bias if self.decay_norm_and_bias is not None else self.name != "momentum"


class Schedule(_R):
    name: Literal["constant", "step", "cosine", "onecycle"] = "cosine"
    by: Literal["step", "epoch"] = Field("step", description="granularity: a new LR every step or every epoch")
    warmup_epochs: float = Field(0, ge=0, le=100_000)
    warmup_start_lr: float = Field(0.0, ge=0, le=1e3)
    min_lr: float = Field(0.0, ge=0, le=1e3, description="cosine's final LR")
    milestones: list[Annotated[int, Field(ge=0, le=100_000)]] = Field(
        default_factory=list, max_length=1000, description="step: epochs where LR *= gamma")
    gamma: float = Field(0.1, gt=0, le=1e3)
    # one-cycle, torch OneCycleLR's parameters and defaults
    pct_start: float = Field(0.3, gt=0, lt=1)
    div_factor: float = Field(25.0, gt=0, le=1e12)
    final_div_factor: float = Field(1e4, gt=0, le=1e12)
    anneal: Literal["cos", "linear"] = "cos"
    three_phase: bool = False
    cycle_momentum: bool = True
    base_momentum: float = Field(0.85, ge=0, lt=1)
    max_momentum: float = Field(0.95, ge=0, lt=1)


class Head(_R):
    """A new classifier in place of the model's last Linear: ``Linear(h) - act - Dropout`` per
    hidden width, then ``Linear(classes)`` (the ShuffleNet transfer tutorial's head)."""
    hidden: list[Annotated[int, Field(ge=1, le=65_536)]] = Field(min_length=1, max_length=64)
    act: Literal["relu", "relu6", "hardswish", "swish", "tanh"] = "relu"
    dropout: float = Field(0.0, ge=0, lt=1)


class Recipe(_R):
    """Every default is the digits recipe (``recipes/digits.yaml``): Adam 1e-3, cosine per step,
    5 epochs of batch 32 on scikit-learn's digits at 32x32; a recipe file overrides what it names."""
    model: str = Field("", max_length=4096, description="zoo name or spec file (.json/.yaml/.yml); never code")
    overrides: dict = Field(default_factory=dict, description="zoo builder overrides, e.g. num_classes")
    image_size: Optional[Size] = Field(
        None, description="zoo models' input_size; None: the model's own, except 32 for the digits")
    data: Data = Field(default_factory=Data)
    train_transforms: Optional[list[Transform]] = None
    eval_transforms: Optional[list[Transform]] = None
    optimizer: Optimizer = Field(default_factory=Optimizer)
    schedule: Schedule = Field(default_factory=Schedule)
    head: Optional[Head] = None
    drop_last: bool = Field(True, description="drop the last, incomplete training batch")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    epochs: Epochs = 5
    batch_size: int = Field(32, ge=1, le=65_536)
    eval_batch_size: Optional[int] = Field(None, ge=1, le=65_536)
    max_steps: Optional[int] = Field(None, ge=1, le=10**9, description="stop after this many steps in all (smoke runs)")
    seed: Seed = 0
    clip_grad_norm: Optional[float] = Field(None, gt=0, le=1e12)
    weights: str = Field("", description="checkpoint to start from (native, canonical, torchvision)")
    weights_format: str = ""
    freeze: list[str] = Field(default_factory=list, description="node-path prefixes kept fixed")
    checkpoint_every: Epochs = 1

    @field_validator("model")
    @classmethod
    def _data_only(cls, v: str) -> str:
        from ..models import kind
        if v and kind(v) == "code":
            raise ValueError(f"{v!r} is Python code (module:function); a recipe names a zoo model or a spec file "
                             "(.json/.yaml/.yml): pass code on the command line or to the Python API")
        return v

    @model_validator(mode="after")
    def _transform_sizes(self):
        for field_name in ("train_transforms", "eval_transforms"):
            for i, t in enumerate(getattr(self, field_name) or ()):
                for key in ("size", "padding"):
                    v = getattr(t, key, None)
                    if isinstance(v, int) and v > MAX_PIXELS:
                        raise ValueError(f"{field_name}.{i}.{key}: {v} exceeds {MAX_PIXELS} pixels")
        return self


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
    from .. import yamldoc

    doc: dict = dict(base or {})
    if path:
        try:
            loaded = yamldoc.read(path, "recipe")  # plain data only: no Python objects from user files
        except yamldoc.YamlError as err:
            raise RecipeError(str(err)) from None
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
