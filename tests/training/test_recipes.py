"""The shipped recipes (recipes/*.yaml): valid, their models build, their transforms produce the
model's input size, and the defaults are the digits recipe."""
import glob
import os

import numpy as np
import pytest

from onespec import data as D
from onespec.training import load_recipe
from onespec.models import for_recipe
from onespec.training.engine import transforms_for

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "recipes")
RECIPES = sorted(glob.glob(os.path.join(ROOT, "*.yaml")))


def test_all_five_pipelines_and_the_default_are_shipped():
    names = {os.path.basename(p) for p in RECIPES}
    assert {"digits.yaml", "squeezenet_transfer.yaml", "shufflenet_transfer.yaml", "vgg11_cifar.yaml",
            "mobilenetv2_garbage.yaml", "hybridsn_indian_pines.yaml", "micronet_imagenet.yaml"} <= names


def test_defaults_are_the_digits_recipe():
    shipped = load_recipe(os.path.join(ROOT, "digits.yaml"))
    assert shipped.model_dump(exclude={"model"}) == load_recipe(None, {"image_size": 32}).model_dump(exclude={"model"})


@pytest.mark.parametrize("path", RECIPES, ids=os.path.basename)
def test_recipe_builds_its_model_and_inputs(path):
    r = load_recipe(path)
    k = 7
    spec = for_recipe(None, r, k)
    assert spec.output_shape == (k,)
    if r.data.source == "mat":
        assert spec.input_shape == (1, r.data.pca, r.data.patch, r.data.patch)
        return
    size = {"cifar10": 32, "digits": 8}.get(r.data.source, 300)
    img = np.random.default_rng(0).integers(0, 256, (size, size + 40 if size == 300 else size, 3), dtype=np.uint8)
    for train in (True, False):
        x = D.apply(transforms_for(r, spec, train), img, np.random.default_rng(1))
        assert x.shape == spec.input_shape and x.dtype == np.float32, (train, x.shape)
