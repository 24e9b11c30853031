"""Verdict quality (benchmarks/verdicts.py): align and diff raise no false alarm on models where
nothing differs, and catch every kind of injected difference (a BN momentum or epsilon, a
padding, a hardsigmoid slope, a dropped bias, a weight decay, an LR schedule one step late),
naming the node (diff) or the recipe field (align) where they can."""
import json
import os
import sys

import pytest

from conftest import require
from onespec.spec.nodes import BatchNorm, Conv, Flatten, GlobalAvgPool, HardSigmoid, Linear
from onespec.zoo.common import model

pytestmark = pytest.mark.frameworks
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "benchmarks"))
import verdicts as V  # noqa: E402


def every_kind():
    """One model that can take every injection: a padded, biased conv, a BN, a hardsigmoid."""
    return model("kinds", (3, V.SIDE, V.SIDE),
                 [Conv(name="conv", out_channels=8, kernel=3, padding=1), BatchNorm(name="bn"),
                  HardSigmoid(name="hsig"), GlobalAvgPool(name="pool"), Flatten(name="flat"),
                  Linear(name="fc", out_features=10)], family="test", paper="", source="", num_classes=10)


def _check(cases, steps, tmp_path, diff=True):
    rows = V.run_align(cases, steps, str(tmp_path))
    drows = V.run_diff(cases, str(tmp_path)) if diff else []
    s = V.summarize(rows, drows)
    print(json.dumps(s, default=str))  # the figures docs/training.md quotes (pytest -s)
    assert not s["align"]["errors"], s["align"]["errors"]
    assert s["align"]["false_alarms"][0] == 0, [r for r in rows if r["kind"] == "clean" and r["verdict"] != "aligned"]
    for r in rows:
        if r["kind"] != "clean" and r["verdict"] == "parts":
            assert set(r["parts"]) == {r["target"]}, r  # only the framework given the difference parts
            assert (r["step"] or 0) <= steps and (r["step"] is not None or r["named"]), r  # a recipe: named at once
        if r["kind"] in V.RECIPE_KINDS:
            assert r["verdict"] == "parts" and r["named"], r  # diff compares networks: align names recipes
    for mode in ("eval", "train"):
        if diff:
            assert s["diff"][f"{mode}_false_alarms"][0] == 0, [r for r in drows if r["kind"] == "clean"
                                                               and r["verdict"] != "clean"]
    for r in drows:
        if r["kind"] != "clean" and r["verdict"] != "clean":
            assert V.diff_names(r), r  # diff names the node injected, no other
    assert all(not missed for _, _, missed in s["caught"].values()), s["caught"]
    return s


def test_verdicts_on_a_handful_of_specs_and_every_injection_once(tmp_path):
    require("torch", "paddle", "mindspore")
    cases = [(every_kind(), ("clean", *V.INJECTIONS))] + [(s, ("clean",)) for s in V.random_specs(2)]
    s = _check(cases, 4, tmp_path)
    assert all(s["align"][k]["applicable"] == 1 for k in V.INJECTIONS), s["align"]
    # this model's data reach every injected difference: align alone catches each, at step 1 (a
    # dropped bias at step 0: the start state lacks it)
    assert all(s["align"][k]["caught"] == 1 and s["align"][k]["steps"] == [0 if k == "dropped_bias" else 1]
               for k in V.INJECTIONS), s["align"]


@pytest.mark.slow
def test_verdicts_on_30_random_specs_and_10_zoo_models(tmp_path):
    require("torch", "paddle", "mindspore")
    cases = [(m, ("clean", *V.INJECTIONS)) for m in V.random_specs(30) + V.zoo_specs(V.ZOO)]
    _check(cases, 8, tmp_path)


@pytest.mark.slow
def test_align_raises_no_false_alarm_on_200_random_specs(tmp_path):
    require("torch", "paddle", "mindspore")
    _check([(m, ("clean",)) for m in V.random_specs(200)], 8, tmp_path, diff=False)
