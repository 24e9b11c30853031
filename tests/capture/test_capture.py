"""Capture from torch: a module becomes a spec whose tensor names are the module's own
``state_dict`` keys, proven equal to the module in torch, paddle and mindspore (each in its own
process); what cannot be captured is reported at once, each problem with its module path."""
import numpy as np
import pytest

from onespec.backends import FRAMEWORKS

from conftest import require

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


class FaceHeads(nn.Module):
    """A face-detector-like network: PReLU, ZeroPad2d, attribute names beginning with ``_``,
    a permute before flatten, softmax, and three outputs."""

    def __init__(self):
        super().__init__()
        self._stem = nn.Sequential(nn.ZeroPad2d((1, 2, 0, 1)), nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8),
                                   nn.PReLU(8))
        self._blocks = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.PReLU(), nn.Conv2d(8, 16, 1))
        self.cls = nn.Conv2d(16, 4, 1)
        self.box = nn.Conv2d(16, 8, 1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        y = self._blocks(self._stem(x))
        scores = F.softmax(self.cls(y).permute(0, 2, 3, 1).flatten(1).view(x.shape[0], -1, 2), dim=-1)
        boxes = self.box(y).permute(0, 2, 3, 1).flatten(1)
        return scores, boxes, self.fc(y.mean((2, 3)))


class UNet(nn.Module):
    """A two-level U-Net: cross-stage skips joined by concatenation, a transposed-conv upsample."""

    def __init__(self):
        super().__init__()
        block = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())  # noqa: E731
        self.enc1, self.enc2, self.mid = block(3, 8), block(8, 16), block(16, 16)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(16, 16, 2, stride=2), block(32, 8)
        self.up1, self.dec1 = nn.Upsample(scale_factor=2), block(16, 8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)


def _randomized(m):
    """Non-trivial BN statistics and PReLU slopes, so that every tensor's mapping shows."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5 if name.endswith(("running_var", "weight"))
                        and t.dim() == 1 else t + 0.1 * torch.randn(t.shape, generator=g))
    return m.eval()


def _capture_and_prove(module, shape, frameworks=FRAMEWORKS):
    """Captured names are the module's keys, and the spec built in ``frameworks`` equals it."""
    from onespec.capture import capture, reference_outputs
    from onespec.capture.prove import prove

    spec, state = capture(module, shape)
    keys = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(state) == keys, sorted(set(state) ^ keys)
    x = np.random.default_rng(1).standard_normal((2, *shape)).astype(np.float32)
    if frameworks == ("torch",):  # in this process: no child interpreter to start
        from onespec.backends import load_backend
        from onespec.capture.prove import TOLERANCE, relative_errors

        tb = load_backend("torch")
        net = tb.build(spec)
        tb.load_state(net, spec, state)
        errors = relative_errors(tb.forward(net, x)[0], reference_outputs(module, x))
        result = {"torch": {"ok": max(errors) <= TOLERANCE, "errors": errors}}
    else:
        result = prove(spec, state, x, reference_outputs(module, x), frameworks)
    assert all(r["ok"] for r in result.values()), result
    return spec, result


def test_face_heads_with_prelu_softmax_permute_pad_and_three_outputs():
    require(*FRAMEWORKS)
    spec, result = _capture_and_prove(_randomized(FaceHeads()), (3, 16, 16))
    assert spec.outputs == ["softmax", "flatten_1", "fc"] and spec.layers[0].name == "_stem"
    ops = {r.op for r in __import__("onespec").analyze(spec).rows}
    assert {"prelu", "pad", "permute", "softmax", "mean"} <= ops
    assert all(len(r["errors"]) == 3 for r in result.values())


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
def test_torchvision_densenet121_keeps_its_names():
    require(*FRAMEWORKS)
    tv = pytest.importorskip("torchvision")
    _capture_and_prove(_randomized(tv.models.densenet121(num_classes=10)), (3, 32, 32))


class _Item(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.gate = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x) * self.gate(x).mean().item()


class _Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        if x.sum() > 0:
            return self.head(x)
        return x


class _Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 3, 1), nn.LogSigmoid())
        self.tail = nn.ELU()

    def forward(self, x):
        return self.tail(self.block(x))


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(self.conv(x))


@pytest.mark.parametrize("module, where, why", [
    (_Item(), "<root>", ".item()"),
    (_Branch(), "<root>", "data-dependent"),
    (_Unsupported(), "block.1", "log_sigmoid"),
    (_Twice(), "conv", "called more than once"),
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
    assert "test_capture.py" in e.value.problems[0]  # the source line
