"""What the spec refuses, each by a named rule: documents that break a rule, node names that
would shadow a framework's module attributes, pools no framework agrees on."""
import json

import pytest
from pydantic import ValidationError

from onespec.spec import Conv, MaxPool, ModelMeta, ModelSpec


def test_mixed_ceil_mode_pool_is_rejected_by_a_named_rule():
    with pytest.raises(ValidationError, match=r"\[ceil_mode\]"):
        ModelSpec(name="pool", input_shape=(1, 5, 6), layers=[
            MaxPool(name="pool", kernel=(2, 3), stride=2, padding=1, ceil_mode=True)], meta=ModelMeta(family="t"))


@pytest.mark.parametrize("name", ["forward", "training", "construct", "cells", "parameters", "state_dict", "eval",
                                  "_modules", "_cells", "_sub_layers", "__init__", "a.b", ""])
def test_names_that_collide_with_framework_attributes_are_rejected(name):
    with pytest.raises(ValidationError, match=r"reserved|pattern"):
        Conv(name=name, out_channels=4, kernel=1)


@pytest.mark.parametrize("doc,rule", [
    ({"layers": []}, "empty"),
    ({"layers": [{"op": "seq", "name": "s", "layers": []}]}, "empty"),
    ({"layers": [{"op": "batchnorm", "name": "bn", "eps": float("nan")}]}, "finite"),
    ({"layers": [{"op": "dropout", "name": "d", "p": float("inf")}]}, "finite"),
    ({"layers": [{"op": "conv", "name": "c", "out_channels": True, "kernel": 1}]}, "int"),
    ({"layers": [{"op": "conv", "name": "c", "out_channels": 2.5, "kernel": 1}]}, "int"),
    ({"input_shape": [3, None, 4]}, "int"),
])
def test_bad_documents_raise_validation_errors(doc, rule):
    base = {"name": "t", "input_shape": [3, 8, 8], "meta": {"family": "t"},
            "layers": [{"op": "flatten", "name": "f"}]}
    with pytest.raises(ValidationError) as info:
        ModelSpec.model_validate_json(json.dumps({**base, **doc}))
    assert rule in str(info.value).lower() or rule == "finite" and "nan" in str(info.value).lower(), str(info.value)
