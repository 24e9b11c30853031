"""Specs where a framework's default means something other than the spec says build the spec's
network in every framework and agree with the reference."""
import pytest

import onespec
import onespec.conformance
from onespec import FRAMEWORKS
from onespec.spec import BatchNorm, Conv, Flatten, GroupNorm, Linear, MaxPool, ModelMeta, ModelSpec, Sequential
from onespec.spec.nodes import ConvTranspose, Softmax

from conftest import require


def named(name: str) -> ModelSpec:
    """A small network whose inner conv is called ``name``."""
    return ModelSpec(name="n", input_shape=(3, 4, 4), meta=ModelMeta(family="t"), layers=[
        Sequential(name="body", layers=[Conv(name=name, out_channels=4, kernel=1)]), Flatten(name="flat"),
        Linear(name="fc", out_features=2)])


TRAPS = {
    # k2 s2 p1 ceil on 5x5: torch and mindspore give 3x3, paddle's own ceil mode 4x4
    "ceil_pool": ModelSpec(name="pool", input_shape=(1, 5, 5), meta=ModelMeta(family="t"), layers=[
        MaxPool(name="pool", kernel=2, stride=2, padding=1, ceil_mode=True)]),
    # node names equal to attributes of onespec's own emitted modules, which keep theirs private
    "named_split": named("split"), "named_merge": named("merge"),
    # MindSpore's affine=False BN keeps gamma/beta as parameters (counted as state, loaded as such)
    "bn_no_affine": ModelSpec(name="bn", input_shape=(3, 6, 6), meta=ModelMeta(family="t"), layers=[
        Conv(name="conv", out_channels=4, kernel=3), BatchNorm(name="bn", affine=False), Flatten(name="flat"),
        BatchNorm(name="bn1d", affine=False), Linear(name="fc", out_features=3)]),
    # found by the property tests: Paddle 3.3's GroupNorm without affine has a wrong backward (7.8%)
    "gn_no_affine": ModelSpec(name="gn", input_shape=(1, 7, 5), meta=ModelMeta(family="t"), layers=[
        Conv(name="conv", out_channels=6, kernel=3, padding=1), GroupNorm(name="gn", groups=3, affine=False),
        Flatten(name="flat"), Linear(name="fc", out_features=1)]),
    # MindSpore's Conv2dTranspose zero-pads output_padding's rows after the bias, where torch
    # computes them: rows the padding crops (real values) and rows past the input's reach (bias)
    "conv_transpose_output_padding": ModelSpec(name="ct", input_shape=(2, 3, 3), meta=ModelMeta(family="t"), layers=[
        ConvTranspose(name="up1", out_channels=3, kernel=2, stride=2, padding=1, output_padding=1),
        ConvTranspose(name="up2", out_channels=2, kernel=3, stride=2, padding=(0, 1), output_padding=1)]),
    # MindSpore 2.10 on CPU: when a softmax over a one-element axis is the process's first softmax
    # gradient, every later softmax gradient is wrong (0.2-0.56 relative); the first network takes
    # that gradient, the second is judged after it in the same child
    "softmax_one_element": ModelSpec(name="sm1", input_shape=(2, 4, 4), meta=ModelMeta(family="t"), layers=[
        Conv(name="conv", out_channels=1, kernel=1), Softmax(name="sm", axis=0), Conv(name="up", out_channels=3,
                                                                                     kernel=1),
        Flatten(name="flat"), Linear(name="fc", out_features=2)]),
    "softmax_after_one_element": ModelSpec(name="sm3", input_shape=(2, 4, 4), meta=ModelMeta(family="t"), layers=[
        Conv(name="conv", out_channels=3, kernel=1), Softmax(name="sm", axis=0), Flatten(name="flat"),
        Linear(name="fc", out_features=2)]),
}


@pytest.fixture(scope="module")
def traps():
    require(*FRAMEWORKS)
    rep = onespec.conformance.run_specs(TRAPS, numerics=True)
    return rep, {(r["model"], r["backend"]): r for r in rep.results}


@pytest.mark.parametrize("case", list(TRAPS))
def test_framework_traps_build_the_spec_and_agree_everywhere(traps, case):
    rep, by = traps
    a = onespec.analyze(TRAPS[case])
    for fw in FRAMEWORKS:
        r = by[(case, fw)]
        assert r["status"] == "pass", (r["problems"], rep.table())
        assert (r["params"], r["state"]) == (a.params, a.state)
    if case == "ceil_pool":
        assert a.output_shape == (1, 3, 3)
    if case == "gn_no_affine":  # a well-conditioned step (torch float32 = float64 to 1e-6): tight
        assert max(by[(case, fw)]["train_tensor_err"] for fw in FRAMEWORKS) < 1e-3
