"""The seed zoo beyond the first families: figures against torchvision and the papers,
structure facts, and bad overrides."""
import pytest

import onespec
from onespec.errors import OverrideError

def test_se_resnet50_matches_paper():
    # Hu et al. Table 1/2: SE-ResNet-50 28.1M params, 3.87 vs 3.86 GFLOPs for ResNet-50
    se, base = onespec.analyze("se_resnet50"), onespec.analyze("resnet50")
    assert round(se.params / 1e5) == 281
    assert se.params - base.params == sum(2 * c * c // 16 + c // 16 + c for c in [256] * 3 + [512] * 4 + [1024] * 6
                                          + [2048] * 3)


@pytest.mark.parametrize("name,paper_madds,paper_params", [
    ("micronet_m0", 4, 1.0), ("micronet_m1", 6, 1.8), ("micronet_m2", 12, 2.4), ("micronet_m3", 21, 2.6)])
def test_micronet_figures_near_paper(name, paper_madds, paper_params):
    a = onespec.analyze(name)
    assert abs(a.macs / 1e6 - paper_madds) < 0.8, a.macs
    assert round(a.params / 1e6, 1) == paper_params
    fusion = sum(r.macs for r in a.rows if r.op == "shift_max")
    assert 0 < fusion < 0.2 * a.macs  # the dynamic fusion is counted, and is a minor part


def test_micronet_structure_follows_paddleclas():
    rows = {r.path: r for r in onespec.analyze("micronet_m0").rows}
    assert rows["features.stem.conv1"].node.kernel == (3, 1) and rows["features.stem.conv1"].node.stride == (2, 1)
    assert rows["features.stem"].out_shape == (4, 112, 112)
    assert rows["features.block1.act1"].node.fn == "relu6"  # row 1: y2 = 0
    dyn = rows["features.block2.act1"]  # row 2: y2 = 2 -> two fusions, shift groups g2 = 8
    assert dyn.op == "shift_max" and dyn.node.fusions == 2 and dyn.node.groups == 8
    assert rows["features.block2.act1.gate.fc2"].out_shape == (4 * dyn.in_shape[0],)
    assert rows["features.block2.act1.gate.hardsigmoid"].node.slope == 0.1666667  # paddle's default
    assert rows["classifier.fc2.bn"].op == "batchnorm"  # logits pass through BN1d and h-swish


def test_mobilenet_v3_facts():
    rows = {r.path: r for r in onespec.analyze("mobilenet_v3_large").rows}
    assert rows["features.block4.se.gate.fc1"].out_shape == (24, 1, 1)  # make_divisible(72 // 4, 8)
    assert rows["features.stem.bn"].node.eps == 1e-3 and rows["features.stem.bn"].node.momentum == 0.01
    assert "features.block1.expand" not in rows  # exp == in: no expansion conv
    assert rows["features.last_conv"].out_shape == (960, 7, 7)


def test_shufflenet_v2_split_unit():
    rows = {r.path: r for r in onespec.analyze("shufflenet_v2_x1_0").rows}
    assert rows["stage2.unit1.branches"].node.split == [58, 58]
    assert rows["stage2.unit1.branches.branch2"].in_shape == (58, 28, 28)
    assert rows["stage2.unit0.branches.branch1"].in_shape == (24, 56, 56)


@pytest.mark.parametrize("groups", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("width", [0.5, 1.0, 1.5, 2.0])
def test_shufflenet_v1_table(groups, width):
    from onespec.zoo.shufflenet import V1_STAGE_CHANNELS
    outs = [int(c * width) for c in V1_STAGE_CHANNELS[groups]]
    inputs = [int(24 * width)] + outs[:2]
    buildable = all(o // 4 % groups == 0 and (o - i) % groups == 0 for o, i in zip(outs, inputs))
    if buildable:
        a = onespec.analyze("shufflenet_v1", groups=groups, width=width)
        assert [a.shapes()[f"stage{s}"][0] for s in (2, 3, 4)] == outs
    else:
        with pytest.raises(OverrideError, match="not divisible by groups"):
            onespec.get_spec("shufflenet_v1", groups=groups, width=width)


def test_shufflenet_v1_paper_complexity():
    # Table 1 complexity (MFLOPs) for g = 1, 2, 3, 4, 8 at 1x: 143, 140, 137, 133, 137
    got = [onespec.analyze("shufflenet_v1", groups=g).macs / 1e6 for g in (1, 2, 3, 4, 8)]
    for m, paper in zip(got, (143, 140, 137, 133, 137)):
        assert abs(m - paper) < 2.0, got


def test_hybridsn_shapes_and_overrides():
    s = onespec.analyze("hybridsn").shapes()
    assert s["conv3d_3"] == (32, 18, 19, 19) and s["fold"] == (576, 19, 19) and s["flatten"] == (18496,)
    a = onespec.analyze("hybridsn", bands=15, input_size=11, num_classes=9)
    assert a.input_shape == (1, 15, 11, 11) and a.output_shape == (9,)


def test_bad_overrides():
    with pytest.raises(OverrideError, match="groups must be one of"):
        onespec.get_spec("shufflenet_v1", groups=5)
    with pytest.raises(OverrideError, match=r"\[width\]"):
        onespec.get_spec("shufflenet_v2_x1_0", width=0)
    with pytest.raises(OverrideError, match=r"\[width\]"):
        onespec.get_spec("mobilenet_v3_small", width=0)
    with pytest.raises(OverrideError, match="bands=12 cannot be covered by the 3D kernels"):
        onespec.get_spec("hybridsn", bands=12)
    with pytest.raises(OverrideError, match="input_size=8 is too small"):
        onespec.get_spec("hybridsn", input_size=8)
    with pytest.raises(OverrideError, match=r"\[empty\]"):  # 7x7/2 conv and three pools on 16 pixels
        onespec.get_spec("squeezenet1_0", input_size=16)
    with pytest.raises(OverrideError, match="divisible by 32"):
        onespec.get_spec("micronet_m0", input_size=200)
    with pytest.raises(OverrideError, match="must be even"):
        onespec.get_spec("shufflenet_v2_x1_0", width=0.99)
