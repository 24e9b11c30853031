"""Registry, overrides, and the framework-free import guarantee."""
import subprocess
import sys

import pytest

import onespec
from onespec.errors import OverrideError, UnknownModelError
from onespec.zoo import register
from onespec.zoo.squeezenet import build as squeezenet_build

SEED_MODELS = [
    "squeezenet1_0", "squeezenet1_1", "squeezenet1_0_bypass", "squeezenet1_0_complex_bypass", "mobilenet_v1",
    "mobilenet_v2", "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "vgg11_cifar",
]


def test_list_models_has_the_first_families():
    assert set(SEED_MODELS) <= set(onespec.list_models())
    assert onespec.list_models() == sorted(onespec.list_models())


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register("squeezenet1_0", squeezenet_build, version="1_0")


def test_unknown_model_suggests():
    with pytest.raises(UnknownModelError, match="squeezenet1_0"):
        onespec.get_spec("squeezenet1_O")


IMAGE_MODELS = [n for n in onespec.list_models() if not n.startswith("hybridsn")]


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_common_overrides(name):
    spec = onespec.get_spec(name, num_classes=7, in_channels=1, input_size=(64, 96))
    assert spec.input_shape == (1, 64, 96)
    assert spec.output_shape == (7,)
    assert spec.meta.num_classes == 7
    if "width" in onespec.zoo.entry(name).accepted():
        assert onespec.analyze(name, width=0.5).params < onespec.analyze(name).params


def test_override_errors_are_clear():
    with pytest.raises(OverrideError, match="unknown override.*'depth'"):
        onespec.get_spec("mobilenet_v2", depth=3)
    with pytest.raises(OverrideError, match="num_classes must be a positive int"):
        onespec.get_spec("vgg16", num_classes=0)
    with pytest.raises(OverrideError, match=r"\[width\]"):
        onespec.get_spec("mobilenet_v1", width=0.001)
    with pytest.raises(OverrideError, match=r"\[width\]"):
        onespec.get_spec("squeezenet1_1", width=0)
    # 5 max-pools need at least 32 pixels: names the node that collapses
    with pytest.raises(OverrideError, match=r"features.stage5.pool: \[empty\]"):
        onespec.get_spec("vgg11_cifar", input_size=16)
    with pytest.raises(OverrideError, match="input_size"):
        onespec.get_spec("vgg11", input_size=(32,))


def test_build_rejects_overrides_on_a_spec():
    spec = onespec.get_spec("squeezenet1_1")
    with pytest.raises(OverrideError):
        onespec.build(spec, backend="torch", num_classes=3)


def test_bypass_variants_structure():
    rows = {r.path: r for r in onespec.analyze("squeezenet1_0_complex_bypass").rows}
    assert rows["features.fire3"].op == "parallel" and rows["features.fire3.bypass"].op == "identity"
    assert rows["features.fire2.bypass"].op == "conv" and rows["features.fire2.bypass"].params == 96 * 128 + 128
    simple = {r.path for r in onespec.analyze("squeezenet1_0_bypass").rows}
    assert "features.fire9.bypass" in simple and "features.fire2.bypass" not in simple


def test_cifar_vgg_matches_the_tutorial():
    a = onespec.analyze("vgg11_cifar")
    assert a.input_shape == (3, 32, 32) and a.output_shape == (10,)
    assert a.shapes()["flatten"] == (512,)
    assert [r.path for r in a.rows if r.op == "dropout"][:2] == ["features.stage1.conv1.dropout",
                                                                 "features.stage2.conv1.dropout"]


def test_import_onespec_imports_no_framework():
    code = (
        "import sys, onespec\n"
        "onespec.get_spec('mobilenet_v2', num_classes=10); onespec.analyze('vgg16_bn')\n"
        "import onespec.spec, onespec.zoo, onespec.conformance, onespec.cli, onespec.weights\n"
        "import onespec.importers, onespec.convert, onespec.backends.numpy\n"
        "onespec.init_state(onespec.get_spec('squeezenet1_1'), 0)\n"
        "bad = [m for m in ('torch', 'paddle', 'mindspore', 'torchvision') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'jax'"):
        onespec.build("squeezenet1_1", backend="jax")
