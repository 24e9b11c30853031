"""Capture from torch: a module becomes a spec whose tensor names are the module's own
``state_dict`` keys, proven equal to the module in torch, paddle and mindspore (each in its own
process); what cannot be captured is reported at once, each problem with its module path."""
import numpy as np
import pytest

from onespec.backends import FRAMEWORKS

from conftest import require

torch = pytest.importorskip("torch")

from capture_models import (UNet, _Branch, _Custom, _Item, _randomized, _Twice, _Unsupported,  # noqa: E402
                            build_face_heads)


def _capture_and_prove(module, shape, frameworks=FRAMEWORKS):
    """Captured names are the module's keys, and the spec built in ``frameworks`` equals it."""
    from onespec.capture import capture, reference_outputs
    from onespec.capture.prove import prove

    spec, state = capture(module, shape)
    keys = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    named = {spec.aliases.get(k, k) for k in state}  # the module's keys, through the spec's aliases
    assert named == keys, sorted(named ^ keys)
    x = np.random.default_rng(1).standard_normal((2, *shape)).astype(np.float32)
    result = prove(spec, state, [x], [reference_outputs(module, x)], frameworks, here="torch")[0]
    assert all(r["ok"] for r in result.values()), result
    return spec, result


def test_face_heads_with_prelu_softmax_permute_pad_and_three_outputs():
    """In torch here; the CLI test proves the same capture in every framework."""
    require("torch")
    spec, result = _capture_and_prove(build_face_heads(), (3, 16, 16), ("torch",))
    assert spec.outputs == ["softmax", "flatten_1", "fc"] and spec.layers[0].name == "_stem"
    ops = {r.op for r in __import__("onespec").analyze(spec).rows}
    assert {"prelu", "pad", "permute", "softmax", "mean"} <= ops
    assert len(result["torch"]["errors"]) == 3


@pytest.mark.parametrize("frameworks", [("torch",), pytest.param(FRAMEWORKS, marks=pytest.mark.slow)])
def test_unet_skips_become_a_graph(frameworks):
    require(*frameworks)
    spec, _ = _capture_and_prove(_randomized(UNet()), (3, 16, 16), frameworks)
    assert spec.wired and [layer.name for layer in spec.layers][:3] == ["enc1", "pool", "enc2"]
    assert spec.inputs["cat"] == ["up2", "enc2"]


@pytest.mark.parametrize("frameworks", [("torch",), pytest.param(FRAMEWORKS, marks=pytest.mark.slow)])
def test_torchvision_mnasnet_keeps_its_names(frameworks):
    require(*frameworks)
    tv = pytest.importorskip("torchvision")
    spec, _ = _capture_and_prove(_randomized(tv.models.mnasnet0_5(num_classes=10)), (3, 32, 32), frameworks)
    assert not spec.wired and spec.layers[0].name == "layers"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["densenet121", "googlenet", "mnasnet1_0", "regnet_x_400mf", "efficientnet_b0"])
def test_torchvision_models_keep_their_names(name):
    require(*FRAMEWORKS)
    tv = pytest.importorskip("torchvision")
    kw = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
    _capture_and_prove(_randomized(getattr(tv.models, name)(num_classes=10, **kw)), (3, 64, 64))


@pytest.mark.slow
def test_timm_ghostnet_keeps_its_names():
    """timm's BatchNormAct2d owns its norm's tensors and runs its ``act`` child: the norm becomes a
    child node whose tensors are aliased to the module's keys."""
    require(*FRAMEWORKS)
    timm = pytest.importorskip("timm")
    spec, _ = _capture_and_prove(_randomized(timm.create_model("ghostnet_100", num_classes=10)), (3, 64, 64))
    assert spec.aliases and all(v.rsplit(".", 1)[0].endswith("bn1") for v in spec.aliases.values())


@pytest.mark.slow
@pytest.mark.parametrize("frameworks", [FRAMEWORKS])
def test_torchvision_convnext_aliases_its_layer_scale(frameworks):
    """ConvNeXt's blocks own a bare ``layer_scale`` beside their ops: a layer-scale node named by it,
    its tensor aliased to the original key; LayerNorm2d's permute-norm-permute a channel norm."""
    require(*frameworks)
    tv = pytest.importorskip("torchvision")
    spec, _ = _capture_and_prove(_randomized(tv.models.convnext_tiny(num_classes=10)), (3, 32, 32), frameworks)
    assert len(spec.aliases) == 18 and spec.aliases["features.1.0.layer_scale.gamma"] == "features.1.0.layer_scale"
    norms = [r for r in __import__("onespec").analyze(spec).rows if r.op == "layernorm"]
    assert sum(not r.node.last_axis for r in norms) == 5  # the stem's, three downsamples', the head's


@pytest.mark.parametrize("module, where, why", [
    (_Item(), "<root>", ".item()"),
    (_Branch(), "<root>", "data-dependent"),
    (_Unsupported(), "block.1", "log_sigmoid"),
    (_Twice(), "conv", "called more than once"),
    (_Custom(), "block.1", "custom autograd.Function (capture_models._Clip)"),
])
def test_what_cannot_be_captured_names_the_module(module, where, why):
    from onespec.capture import CaptureError, capture

    with pytest.raises(CaptureError) as e:
        capture(module.eval(), (3, 4, 4))
    assert where in str(e.value) and why in str(e.value), str(e.value)


def test_every_unsupported_op_is_listed_at_once():
    from onespec.capture import CaptureError, capture

    with pytest.raises(CaptureError) as e:
        capture(_Unsupported().eval(), (3, 4, 4))
    assert len(e.value.problems) == 2 and "block.1" in e.value.problems[0] and "tail" in e.value.problems[1]
    assert "capture_models.py" in e.value.problems[0]  # the source line
