"""A captured spec downstream: ``onespec convert ORIGINAL.pth --arch DIR/spec.json --to paddle|mindspore``
reads the module's own checkpoint with no name map (the captured names are its ``state_dict``
keys), and the written file holds the original tensors."""
import numpy as np
import pytest

from conftest import require

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402


class _Scaled(nn.Module):
    """A residual whose branch is scaled by a bare parameter of the block (ConvNeXt's layer_scale):
    the block runs ops and owns a tensor no op names, so the spec aliases it."""

    def __init__(self, c):
        super().__init__()
        self.body = nn.Conv2d(c, c, 3, padding=1)
        self.layer_scale = nn.Parameter(torch.rand(c, 1, 1) + 0.5)

    def forward(self, x):
        return x + self.layer_scale * self.body(x)


class _NormAct(nn.BatchNorm2d):
    """A batch norm that runs its activation child after itself (timm's BatchNormAct2d): the
    module owns the norm's tensors and runs another op, so the norm is a child node, aliased."""

    def __init__(self, c):
        super().__init__(c)
        self.act = nn.PReLU(c)

    def forward(self, x):
        return self.act(super().forward(x))


class _ChannelNorm(nn.LayerNorm):
    """A layer norm over the channels written as torchvision's LayerNorm2d is."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        return nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


class _PaperNet(nn.Module):
    """Names as real code writes them: a leading ``_``, a numbered sequence, a layer scale, a
    channel norm, a head."""

    def __init__(self):
        super().__init__()
        self._stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), _NormAct(8))
        self._blocks = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), _Scaled(8),
                                     _ChannelNorm(8), nn.Conv2d(8, 12, 1))
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        return self.head(self._blocks(self._stem(x)).mean((2, 3)))


def _captured(tmp_path):
    """(the module's original checkpoint ``orig.pth``, ``DIR/spec.json``, its state_dict)."""
    from onespec.capture import capture, reference_outputs
    from onespec.capture.prove import prove

    torch.manual_seed(0)
    module = _PaperNet().eval()
    with torch.no_grad():
        module._stem[1].running_mean.uniform_(-1, 1)
        module._stem[1].running_var.uniform_(0.5, 2)
    spec, state = capture(module, (3, 8, 8))
    norm = {f"_stem.1.{t}" for t in ("weight", "bias", "running_mean", "running_var")}
    assert set(spec.aliases.values()) == {"_blocks.2.layer_scale"} | norm
    assert spec.aliases["_blocks.2.layer_scale.gamma"] == "_blocks.2.layer_scale"
    assert not spec.layers[1].layers[3].last_axis  # permute, layer norm, permute: one channel norm
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    assert prove(spec, state, [x], [reference_outputs(module, x)], ("torch",), here="torch")[0]["torch"]["ok"]
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "spec.json").write_text(spec.model_dump_json())
    torch.save(module.state_dict(), tmp_path / "orig.pth")
    return tmp_path / "orig.pth", str(tmp_path / "net" / "spec.json"), module.state_dict()


def _convert(*argv):
    from onespec.cli import main

    assert main(["convert", *map(str, argv)]) == 0


def _equal_to(state, path, spec_path):
    """The torch file at ``path`` (onespec's torch build of the spec) holds ``state`` under the
    spec's aliases (the aliased layer scale as its op's (C,) gamma)."""
    from onespec.spec import parse_spec

    aliases = parse_spec(open(spec_path).read()).aliases
    want = {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    got = torch.load(path, weights_only=True)
    got = {aliases.get(k, k): v.numpy() for k, v in got.items() if not k.endswith("num_batches_tracked")}
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k].ravel(), want[k].ravel(), err_msg=k)


def test_the_original_checkpoint_converts_with_no_name_map(tmp_path):
    """To canonical (a torch child only): the canonical names are the module's keys."""
    require("torch")
    from onespec.weights import load_state
    from onespec.spec import parse_spec

    orig, spec_path, state = _captured(tmp_path)
    _convert(orig, "--arch", spec_path, "--to", "canonical", "-o", tmp_path / "c.npz")
    spec = parse_spec(open(spec_path).read())
    got = {spec.aliases.get(k, k): v for k, v in load_state(str(tmp_path / "c.npz"), spec).items()}
    want = {k: v.numpy() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k].ravel(), want[k].ravel()) for k in want)


@pytest.mark.slow
@pytest.mark.parametrize("to, ext", [("mindspore", "ckpt"), ("paddle", "pdparams")])
def test_the_original_checkpoint_converts_to_each_framework(tmp_path, to, ext):
    """The framework's file, read back into torch, is the original checkpoint, tensor for tensor."""
    require("torch", to)
    orig, spec_path, state = _captured(tmp_path)
    _convert(orig, "--arch", spec_path, "--to", to, "-o", tmp_path / f"net.{ext}")
    _convert(tmp_path / f"net.{ext}", "--arch", spec_path, "--to", "torch", "-o", tmp_path / "back.pth")
    _equal_to(state, tmp_path / "back.pth", spec_path)


def test_commands_that_need_one_output_refuse_several_in_one_line(tmp_path):
    """A captured detector (three heads): diff compares every output node by node; export, training
    and diff --backward need one output and say so, naming the command."""
    require("torch")
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from capture_models import build_face_heads
    from onespec.capture import capture
    from onespec.conformance.diff import diff
    from onespec.export import export
    from onespec.spec.analysis import SeveralOutputsError
    from onespec import train

    spec, state = capture(build_face_heads(), (3, 16, 16))
    assert diff(spec, "torch", state=state).first is None
    calls = {"export": lambda: export(spec, state, "onnx", str(tmp_path / "f.onnx")),
             "training": lambda: train(spec, backend="torch", out=str(tmp_path / "run"), progress=False),
             "diff --backward": lambda: diff(spec, "torch", state=state, backward=True)}
    for command, call in calls.items():
        with pytest.raises(SeveralOutputsError) as e:
            call()
        assert str(e.value) == (f"{command}: FaceHeads returns 3 outputs (softmax, flatten_1, fc); "
                                f"{command} takes a network with one output")


@pytest.mark.slow
def test_a_captured_spec_trains_aligns_diffs_and_exports(tmp_path):
    """The capture of a module written here is a model like the zoo's for every command."""
    require("torch", "paddle", "mindspore")
    from onespec.capture import capture
    from onespec.conformance.diff import diff
    from onespec.export import export
    from onespec import train
    from onespec.training.align import align
    from onespec.training.recipe import load_recipe

    torch.manual_seed(0)
    net = _PaperNet()
    net.head = nn.Linear(12, 10)  # digits' ten classes
    spec, state = capture(net.eval(), (3, 16, 16))
    recipe = {"batch_size": 16, "optimizer.name": "sgd", "optimizer.lr": 0.05, "image_size": 16, "max_steps": 3}
    hist = train(spec, load_recipe(None, recipe), backend="torch", out=str(tmp_path / "run"), progress=False)
    assert len(hist.steps) == 3 and all(np.isfinite(r["loss"]) for r in hist.steps)
    report = align(spec, load_recipe(None, recipe), steps=3, out=str(tmp_path / "al"), diagnose=False)
    assert report.ok, report.failures + report.framework_failures
    assert diff(spec, "mindspore", state=state).first is None
    exported = export(spec, state, "onnx", str(tmp_path / "net.onnx"))
    assert exported.checked and max(exported.rel_err.values()) < 1e-4, exported


def test_diff_judges_a_graph_merge_by_its_carried_error(tmp_path):
    """The layer-scaled residual's ``add`` reads two tensors: diff judges it as a combinator."""
    require("torch")
    from onespec.capture import capture
    from onespec.conformance.diff import diff

    spec, state = capture(_PaperNet().eval(), (3, 8, 8))
    report = diff(spec, "torch", state=state)
    add = next(r for r in report.rows if r["path"] == "_blocks.2.add")
    assert report.first is None and add["own"] is None and add["carried"] < 1e-5


class _TwoWidths(nn.Module):
    """The input read by two convolutions of different widths, concatenated, and two heads: a
    graph at the top level with several outputs."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 2, 1)
        self.fc, self.aux = nn.Linear(6, 3), nn.Conv2d(6, 1, 1)

    def forward(self, x):
        y = torch.cat([self.a(x), self.b(x)], 1)
        return self.fc(y.mean((2, 3))), self.aux(y)


def test_conformance_and_diff_take_a_captured_graph_with_several_outputs(tmp_path, monkeypatch):
    """Given by a relative path, a captured graph whose input feeds two branches of different
    widths and which returns two outputs: conformance builds, compiles and compares it with the
    numpy reference in every framework; diff against the numpy reference judges every node."""
    require("torch", "paddle", "mindspore")
    import subprocess
    import sys

    from onespec.capture import capture
    from onespec.conformance.diff import diff

    torch.manual_seed(0)
    spec, state = capture(_TwoWidths().eval(), (3, 8, 8))
    (tmp_path / "cap").mkdir()
    (tmp_path / "cap" / "spec.json").write_text(spec.model_dump_json())
    r = subprocess.run([sys.executable, "-m", "onespec", "conformance", "cap/spec.json", "--numerics"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "CONFORMANCE PASSED" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stdout.count("2x3 + 2x1x8x8") == 3 and "ERROR" not in r.stdout
    report = diff(spec, "torch", state=state)
    assert report.first is None and {"cat", "fc", "aux"} <= {row["path"] for row in report.rows}
