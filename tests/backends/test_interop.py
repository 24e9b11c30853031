"""Same weights, same numbers, across frameworks and from torchvision; checkpoints and bad input.

Each framework runs in its own interpreter (paddle and mindspore cannot share one)."""
import json
import subprocess
import sys

import numpy as np
import pytest

import onespec
from onespec.importers import importable

TORCHVISION_MODELS = importable("torchvision")
# make test: one model per importer map (the maps are per family), at the smallest input size whose
# pools take the same cases (mobilenet_v2 at 224: the through-files test builds the default spec);
# make slow: all 22 at 224
REPRESENTATIVE = ("squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x0_5", "vgg11_bn", "resnet18")


def _size(name: str, small: bool) -> int:
    from onespec.conformance.numerics import small_overrides
    return small_overrides(name).get("input_size", 224) if small and name != "mobilenet_v2" else 224

from conftest import require

from onespec.backends import FRAMEWORKS as BACKENDS


def run_py(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def _torchvision_dir(d, models, small=False):
    """Real torchvision models with random weights (BN statistics randomized too): their
    state_dicts, onespec's import of them, and torchvision's own outputs."""
    require("torch", "torchvision")
    run_py(f"""
import numpy as np, torch, torchvision, onespec
from onespec.importers import from_torchvision
from onespec.weights import save_state
for name, size in {[(m, _size(m, small)) for m in models]!r}:
    torch.manual_seed(0)
    tv = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.1)
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype("float32")
    with torch.no_grad():
        np.save(r"{d}/" + name + ".out.npy", tv(torch.from_numpy(x)).numpy())
    np.save(r"{d}/" + name + ".x.npy", x)
    sd = {{k: v.numpy() for k, v in tv.state_dict().items()}}
    save_state(from_torchvision(onespec.get_spec(name), sd), r"{d}/" + name + ".npz")
    if name == "mobilenet_v2":
        torch.save(tv.state_dict(), r"{d}/mobilenet_v2.tv.pth")
""")
    return d


@pytest.fixture(scope="module")
def torchvision_dir(tmp_path_factory):
    return _torchvision_dir(tmp_path_factory.mktemp("tv"), REPRESENTATIVE, small=True)


COMPARE = r"""
import json, numpy as np, onespec
from onespec.backends import load_backend
from onespec.weights import load_state
b = load_backend("{backend}")
errs = {{}}
for name in {models!r}:
    x = np.load(r"{d}/" + name + ".x.npy")
    spec = onespec.get_spec(name, input_size=x.shape[-1])
    net = b.build(spec)
    b.load_state(net, spec, load_state(r"{d}/" + name + ".npz"))
    ref = np.load(r"{d}/" + name + ".out.npy")
    y = b.forward(net, x)[0]
    errs[name] = float(np.abs(y - ref).max() / np.abs(ref).max())
print("ERRS" + json.dumps(errs))
"""


def _compare(d, backend, models):
    require(backend)
    out = run_py(COMPARE.format(backend=backend, models=list(models), d=d))
    errs = json.loads(out.split("ERRS", 1)[1])
    print(backend, errs)
    assert set(errs) == set(models)
    assert max(errs.values()) <= 1e-4, errs


@pytest.mark.parametrize("backend", BACKENDS)
def test_torchvision_models_imported_match_torchvision(torchvision_dir, backend):
    """One torchvision model per importer map and block kind, imported by name mapping and
    converted to each framework, reproduces torchvision's own output within 1e-4 relative."""
    assert set(REPRESENTATIVE) <= set(TORCHVISION_MODELS)
    _compare(torchvision_dir, backend, REPRESENTATIVE)


@pytest.mark.slow
def test_every_torchvision_model_imported_matches_torchvision(tmp_path_factory):
    d = _torchvision_dir(tmp_path_factory.mktemp("tvall"), TORCHVISION_MODELS)
    for backend in BACKENDS:
        _compare(d, backend, TORCHVISION_MODELS)


def test_torchvision_mobilenet_v2_through_files(torchvision_dir, tmp_path):
    """The user's path: torchvision .pth -> onespec convert -> .pdparams / .ckpt, loaded with each
    framework's own loader into onespec.build(...), gives torchvision's outputs."""
    require(*BACKENDS)
    tv = str(torchvision_dir / "mobilenet_v2.tv.pth")
    pd, ck = str(tmp_path / "m.pdparams"), str(tmp_path / "m.ckpt")
    for dst, fmt in ((pd, "paddle"), (ck, "mindspore")):
        proc = subprocess.run([sys.executable, "-m", "onespec", "convert", tv, "--arch", "mobilenet_v2",
                               "--to", fmt, "-o", dst], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "(torchvision)" in proc.stdout  # torchvision names detected from the keys
    x, ref = str(torchvision_dir / "mobilenet_v2.x.npy"), str(torchvision_dir / "mobilenet_v2.out.npy")
    out = run_py(f"""
import numpy as np, onespec, paddle
net = onespec.build("mobilenet_v2", backend="paddle")
net.set_state_dict(paddle.load(r"{pd}")); net.eval()
y = net(paddle.to_tensor(np.load(r"{x}"))).numpy(); ref = np.load(r"{ref}")
print("ERR", np.abs(y - ref).max() / np.abs(ref).max())
""")
    assert float(out.split("ERR")[1]) <= 1e-4
    out = run_py(f"""
import numpy as np, mindspore as ms, onespec
net = onespec.build("mobilenet_v2", backend="mindspore")
not_loaded, _ = ms.load_param_into_net(net, ms.load_checkpoint(r"{ck}"), strict_load=True)
assert not not_loaded, not_loaded
net.set_train(False)
y = net(ms.Tensor(np.load(r"{x}"))).asnumpy(); ref = np.load(r"{ref}")
print("ERR", np.abs(y - ref).max() / np.abs(ref).max())
""")
    assert float(out.split("ERR")[1]) <= 1e-4


# ------------------------------------------------------------ native checkpoints and bad input
CHECKPOINTS = r"""
import os, numpy as np, onespec
from onespec.backends import load_backend
from onespec.weights import StateError, init_state
fw, d = "{backend}", r"{d}"
b = load_backend(fw)
ext = {{"torch": ".pth", "paddle": ".pdparams", "mindspore": ".ckpt"}}[fw]
spec = onespec.get_spec("squeezenet1_1", num_classes=10, input_size=64)
x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype("float32")
net = b.build(spec); b.load_state(net, spec, init_state(spec, 1))
y = b.forward(net, x)[0]
good = os.path.join(d, "good" + ext)
b.save(net, good)
fresh = b.build(spec); b.load(fresh, good)
assert np.array_equal(b.forward(fresh, x)[0], y), "save/load changed the outputs"

# native dicts with one defect each, written with the framework's own saver
raw = b.read(good)
def write(name, sd):
    path = os.path.join(d, name + ext)
    if fw == "torch":
        import torch; torch.save({{k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}}, path)
    elif fw == "paddle":
        import paddle; paddle.save({{k: paddle.to_tensor(np.asarray(v)) for k, v in sd.items()}}, path)
    else:
        import mindspore as ms
        ms.save_checkpoint([{{"name": k, "data": ms.Tensor(np.asarray(v))}} for k, v in sd.items()], path)
    return path
key = sorted(k for k in raw if k.endswith("weight"))[0]
missing = dict(raw); del missing[key]
unexpected = dict(raw); unexpected["features.bogus.weight"] = np.zeros(3, "float32")
shaped = dict(raw); shaped[key] = np.zeros((1, 2, 3, 3), "float32")
typed = dict(raw); typed[key] = raw[key].astype("int32")
other = b.build(onespec.get_spec("vgg11_cifar")); wrong_arch = os.path.join(d, "wrong" + ext); b.save(other, wrong_arch)
cut = os.path.join(d, "cut" + ext); open(cut, "wb").write(open(good, "rb").read()[:200])
text = os.path.join(d, "text" + ext); open(text, "w").write("not a checkpoint")
cases = [(write("missing", missing), ["missing", key]), (write("unexpected", unexpected), ["features.bogus.weight"]),
         (write("shaped", shaped), ["wrong shape", key]), (write("typed", typed), ["wrong dtype", key]),
         (wrong_arch, ["missing", "unexpected"]), (cut, [ext]), (text, [ext])]
target = b.build(spec); b.load_state(target, spec, init_state(spec, 2))
before = b.get_state(target, spec)
for path, words in cases:
    try:
        b.load(target, path)
    except StateError as err:
        for w in words:
            assert w in str(err), (path, w, str(err))
    else:
        raise AssertionError(f"{{path}} loaded without error")
    after = b.get_state(target, spec)
    assert all(np.array_equal(before[k], after[k]) for k in before), f"{{path}} half-loaded"
try:
    b.load(target, os.path.join(d, "absent" + ext))
    raise SystemExit("loading an absent file did not raise")
except FileNotFoundError:
    pass
print("OK", len(cases))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_native_checkpoints_and_bad_input(backend, tmp_path):
    require(backend)
    out = run_py(CHECKPOINTS.format(backend=backend, d=tmp_path))
    assert "OK 7" in out
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".onespec-")]


def test_convert_round_trips_and_never_half_writes(tmp_path):
    require(*BACKENDS)
    spec = onespec.get_spec("shufflenet_v2_x0_5", num_classes=7)
    from onespec.weights import init_state, load_state, save_state
    src = str(tmp_path / "s.npz")
    save_state(init_state(spec, 5), src)

    def convert(*args, classes=7):
        return subprocess.run([sys.executable, "-m", "onespec", "convert", *args, "--arch", "shufflenet_v2_x0_5",
                               "--set", f"num_classes={classes}"], capture_output=True, text=True)
    chain = [src, str(tmp_path / "a.ckpt"), str(tmp_path / "b.pdparams"), str(tmp_path / "c.pth"),
             str(tmp_path / "d.ckpt"), str(tmp_path / "e.npz")]
    fmts = ["mindspore", "paddle", "torch", "mindspore", "canonical"]
    for a, b, fmt in zip(chain, chain[1:], fmts):
        proc = convert(a, "--to", fmt, "-o", b)
        assert proc.returncode == 0, proc.stderr[-3000:]
    back, first = load_state(chain[-1]), load_state(src)
    assert all(np.array_equal(back[k], first[k]) for k in first)  # bit-exact through every format

    # a failing conversion leaves an existing destination untouched
    dst = tmp_path / "keep.pdparams"
    dst.write_bytes(b"previous contents")
    bad = convert(str(tmp_path / "c.pth"), "--to", "paddle", "-o", str(dst), classes=8)
    assert bad.returncode == 2 and "wrong shape" in bad.stderr and "fc.weight" in bad.stderr
    assert dst.read_bytes() == b"previous contents"
    none = convert(str(tmp_path / "nope.pth"), "--to", "paddle", "-o", str(tmp_path / "x.pdparams"))
    assert none.returncode == 2 and "no such checkpoint" in none.stderr
    odd = convert(str(tmp_path / "e.npz.bin"), "--to", "paddle", "-o", str(tmp_path / "y.pdparams"))
    assert odd.returncode == 2 and "--from" in odd.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".onespec-")]
