"""The framework-free spec: reference figures, shape inference, JSON, schema, validation rules."""
import json

import pytest
from pydantic import ValidationError

import onespec
from onespec.spec import (
    Act, AdaptiveAvgPool, BatchNorm, ChannelShuffle, Conv, Dropout, Flatten, GlobalAvgPool, Identity, Linear,
    MaxPool, ModelMeta, ModelSpec, Parallel, Scale, Sequential, analyze, make_divisible, scale_channels,
)
from onespec.errors import SpecError

def test_macs_match_papers():
    # MobileNet V1 paper Table 1: 569M mult-adds; MobileNet V2 paper: 300M
    assert round(onespec.analyze("mobilenet_v1").macs / 1e6) == 569
    assert round(onespec.analyze("mobilenet_v2").macs / 1e6) == 301  # torchvision: 300.77M
    # SqueezeNet 1.1 is "2.4x less computation" than 1.0
    r = onespec.analyze("squeezenet1_0").macs / onespec.analyze("squeezenet1_1").macs
    assert 2.2 < r < 2.5


def test_state_is_bn_running_stats():
    a = onespec.analyze("mobilenet_v2")
    bn = [r for r in a.rows if r.op == "batchnorm"]
    assert a.state == sum(2 * r.in_shape[0] for r in bn) == 34_112
    assert onespec.analyze("vgg16").state == 0


def test_squeezenet_ceil_mode_intermediate_shapes():
    s = onespec.analyze("squeezenet1_0").shapes()
    assert s["features.conv1"] == (96, 109, 109)
    assert s["features.pool1"] == (96, 54, 54)  # ceil((109-3)/2)+1 = 54
    assert s["features.pool2"] == (256, 27, 27)  # floor mode would give 26
    assert s["features.pool3"] == (512, 13, 13)
    s11 = onespec.analyze("squeezenet1_1").shapes()
    assert s11["features.pool1"] == (64, 55, 55) and s11["features.pool3"] == (256, 13, 13)


def test_mobilenet_width_multipliers():
    v1 = {w: onespec.analyze("mobilenet_v1", width=w).params for w in (1.0, 0.75, 0.5, 0.25)}
    assert v1[1.0] > v1[0.75] > v1[0.5] > v1[0.25]
    # int(c * alpha): the 0.25 model's last block has 256 channels
    assert onespec.analyze("mobilenet_v1", width=0.25).shapes()["features.block13"] == (256, 7, 7)
    # torchvision rounding: 0.5 -> stem 16, last conv stays 1280
    s = onespec.analyze("mobilenet_v2", width=0.5).shapes()
    assert s["features.stem"][0] == 16 and s["features.last_conv"][0] == 1280
    assert onespec.analyze("mobilenet_v2", width=1.4).shapes()["features.last_conv"][0] == 1792


def test_make_divisible():
    assert make_divisible(32 * 0.75) == 24 and make_divisible(1280 * 1.4) == 1792 and make_divisible(3) == 8
    assert make_divisible(100) == 104 and make_divisible(27) == 32  # never 10% below


@pytest.mark.parametrize("name", onespec.list_models())
def test_json_round_trip(name):
    spec = onespec.get_spec(name)
    again = ModelSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert analyze(again).params == analyze(spec).params


def test_json_schema():
    schema = ModelSpec.model_json_schema()
    text = json.dumps(schema)
    for op in ("conv", "batchnorm", "maxpool", "parallel", "seq", "scale", "hardsigmoid", "channel_shuffle"):
        assert f'"{op}"' in text
    assert "discriminator" in text


# ----------------------------------------------------------------------------------- rules
def spec_of(*layers, input_shape=(3, 32, 32)):
    return ModelSpec(name="t", input_shape=input_shape, layers=list(layers), meta=ModelMeta(family="test"))


def assert_rule(rule, path, *layers, input_shape=(3, 32, 32)):
    with pytest.raises(ValidationError) as info:
        spec_of(*layers, input_shape=input_shape)
    text = str(info.value)
    assert f"[{rule}]" in text and f"{path}:" in text, text


def test_valid_small_spec():
    s = spec_of(Conv(name="c", out_channels=8, kernel=3, padding=1), BatchNorm(name="bn"), Act(name="r", fn="relu"),
                GlobalAvgPool(name="gap"), Flatten(name="f"), Linear(name="fc", out_features=4))
    assert s.output_shape == (4,)


def test_rule_channel_mismatch():
    assert_rule("channels", "body.c2", Sequential(name="body", layers=[
        Conv(name="c1", out_channels=8, kernel=1), Conv(name="c2", in_channels=16, out_channels=8, kernel=1)]))


def test_rule_linear_in_features():
    assert_rule("channels", "fc", Flatten(name="f"), Linear(name="fc", in_features=10, out_features=2))


def test_rule_groups():
    assert_rule("groups", "dw", Conv(name="dw", out_channels=8, kernel=3, groups=2))  # 3 inputs
    assert_rule("groups", "shuffle", ChannelShuffle(name="shuffle", groups=2))


def test_rule_empty_spatial():
    assert_rule("empty", "stage.pool3", Sequential(name="stage", layers=[
        MaxPool(name="pool1", kernel=2), MaxPool(name="pool2", kernel=2), MaxPool(name="pool3", kernel=8)]),
        input_shape=(3, 16, 16))


def test_rule_concat_mismatch():
    assert_rule("merge", "p", Parallel(name="p", merge="concat", branches=[
        Conv(name="a", out_channels=4, kernel=1), Conv(name="b", out_channels=4, kernel=3)]))


def test_rule_add_mismatch():
    assert_rule("merge", "res", Parallel(name="res", merge="add", branches=[
        Conv(name="body", out_channels=8, kernel=3, padding=1), Identity(name="shortcut")]))


def test_rule_bad_kernel_stride_padding():
    assert_rule("kernel", "c", Conv(name="c", out_channels=4, kernel=0))
    assert_rule("kernel", "c", Conv(name="c", out_channels=4, kernel=3, stride=0))
    assert_rule("kernel", "c", Conv(name="c", out_channels=4, kernel=3, padding=-1))
    assert_rule("kernel", "c", Conv(name="c", out_channels=4, kernel=(3, 3, 3)))  # 3-d kernel on 2-d input
    assert_rule("pool_padding", "p", MaxPool(name="p", kernel=3, padding=2))


def test_rule_unknown_op():
    with pytest.raises(ValidationError) as info:
        ModelSpec.model_validate({"name": "t", "input_shape": [3, 8, 8], "meta": {"family": "x"},
                                  "layers": [{"op": "deformable_conv", "name": "d"}]})
    assert "deformable_conv" in str(info.value) and "layers.0" in str(info.value)


def test_rule_width_zero_channels():
    with pytest.raises(SpecError, match=r"\[width\]"):
        scale_channels(16, 0.01)
    with pytest.raises(SpecError, match=r"\[width\]"):
        scale_channels(16, 0)
    assert_rule("channels", "c", Conv(name="c", out_channels=0, kernel=1))


def test_rule_rank():
    assert_rule("rank", "fc", Linear(name="fc", out_features=2))  # no flatten
    assert_rule("rank", "c", Flatten(name="f"), Conv(name="c", out_channels=2, kernel=1))


def test_rule_duplicate_names():
    assert_rule("name", "s", Sequential(name="s", layers=[Act(name="a", fn="relu"), Act(name="a", fn="relu")]))


def test_rule_bn_momentum_convention():
    # a Paddle/MindSpore-style 0.9 would silently mean the opposite update
    assert_rule("momentum", "bn", BatchNorm(name="bn", momentum=0.9))


def test_rule_dropout_and_gate():
    assert_rule("dropout", "d", Dropout(name="d", p=1.0))
    assert_rule("gate", "se", Scale(name="se", gate=Sequential(name="fc", layers=[
        GlobalAvgPool(name="gap"), Conv(name="c", out_channels=5, kernel=1)])))


def test_rule_adaptive_and_input_shape():
    assert_rule("kernel", "ap", AdaptiveAvgPool(name="ap", output_size=0))
    with pytest.raises(ValidationError, match=r"\[input\]"):
        spec_of(Act(name="a", fn="relu"), input_shape=(3, 0, 8))


def test_bad_name_rejected():
    with pytest.raises(ValidationError, match="pattern"):
        Conv(name="has.dot", out_channels=1, kernel=1)


def test_extra_fields_rejected():
    with pytest.raises(ValidationError, match="kernel_size"):
        Conv.model_validate({"name": "c", "out_channels": 1, "kernel": 1, "kernel_size": 3})


def test_scale_and_channel_shuffle_shapes():
    s = spec_of(Conv(name="c", out_channels=8, kernel=1), ChannelShuffle(name="sh", groups=4),
                Scale(name="se", gate=Sequential(name="gate", layers=[
                    GlobalAvgPool(name="pool"), Conv(name="fc", out_channels=8, kernel=1), Act(name="sig", fn="sigmoid")])))
    a = analyze(s)
    assert a.shapes()["se"] == (8, 32, 32) and a.shapes()["se.gate.pool"] == (8, 1, 1)
    assert a.params == 3 * 8 + 8 + 8 * 8 + 8


def test_rule_split_and_reshape():
    from onespec.spec import Reshape
    assert_rule("split", "p", Parallel(name="p", merge="concat", split=[1, 1],
                                       branches=[Identity(name="a"), Identity(name="b")]))  # 3 channels
    s = spec_of(Parallel(name="p", merge="concat", split=[1, 2], branches=[
        Identity(name="a"), Conv(name="b", out_channels=4, kernel=1)]))
    assert analyze(s).shapes()["p.b"] == (4, 32, 32) and s.output_shape == (5, 32, 32)
    assert_rule("reshape", "r", Reshape(name="r", shape=(4, 32, 32)))
    assert spec_of(Reshape(name="r", shape=(96, 32)), input_shape=(3, 32, 32)).output_shape == (96, 32)


def test_rule_shift_max():
    from onespec.spec import ShiftMax
    gate = Sequential(name="gate", layers=[GlobalAvgPool(name="p"), Flatten(name="f"),
                                           Linear(name="fc", out_features=2 * 6)])
    assert spec_of(ShiftMax(name="sm", gate=gate, groups=3, fusions=1), input_shape=(6, 4, 4)).output_shape == (6, 4, 4)
    assert_rule("gate", "sm", ShiftMax(name="sm", gate=gate, groups=3, fusions=2), input_shape=(6, 4, 4))
    assert_rule("groups", "sm", ShiftMax(name="sm", gate=gate, groups=4, fusions=1), input_shape=(6, 4, 4))
