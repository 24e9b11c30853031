"""Canonical weights and the numpy reference evaluator, framework-free; checkpoint readers."""
import os

import numpy as np
import pytest

import onespec
from onespec.backends.numpy import kernels as ev
from onespec.backends.numpy import evaluate
from onespec.conformance import calibration as cal
from onespec.importers import importable, torchvision_names

TORCHVISION_MODELS = importable("torchvision")
from onespec.weights import StateError, check_state, init_state, layout, load_state, save_state

from conftest import require


def test_layout_is_canonical():
    lay = layout(onespec.get_spec("mobilenet_v2"))
    assert lay["features.stem.conv.weight"].shape == (32, 3, 3, 3)            # OIHW
    assert lay["features.stage2.block0.dw.conv.weight"].shape == (96, 1, 3, 3)  # depthwise: in/groups = 1
    assert lay["classifier.fc.weight"].shape == (1000, 1280)                    # linear [out, in]
    assert {k.rsplit(".", 1)[1] for k in lay if ".bn." in k} == {"weight", "bias", "running_mean", "running_var"}
    h = layout(onespec.get_spec("hybridsn"))
    assert h["conv3d_1.conv.weight"].shape == (8, 1, 7, 3, 3)                   # OIDHW
    n_trainable = sum(int(np.prod(t.shape)) for t in lay.values() if t.trainable)
    assert n_trainable == onespec.analyze("mobilenet_v2").params


def test_init_state_is_deterministic_and_seeded():
    spec = onespec.get_spec("squeezenet1_1", num_classes=10)
    a, b, c = init_state(spec, 3), init_state(spec, 3), init_state(spec, 4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["features.conv1.weight"], c["features.conv1.weight"])
    assert all(v.dtype == np.float32 for v in a.values())
    # a tensor's values do not depend on the other tensors of the model
    other = init_state(onespec.get_spec("squeezenet1_1", num_classes=20), 3)
    assert np.array_equal(a["features.conv1.weight"], other["features.conv1.weight"])
    bn = init_state(onespec.get_spec("mobilenet_v2"), 0)["features.stem.bn.running_var"]
    assert bn.min() >= 0.5 and bn.max() <= 1.5


def test_npz_round_trip_and_bad_files(tmp_path):
    spec = onespec.get_spec("vgg11_cifar")
    st = init_state(spec, 0)
    path = str(tmp_path / "s.npz")
    save_state(st, path)
    back = load_state(path)
    assert all(np.array_equal(back[k], st[k]) for k in st)
    raw = open(path, "rb").read()
    open(tmp_path / "cut.npz", "wb").write(raw[: len(raw) // 2])
    with pytest.raises(StateError, match="not a readable onespec .npz"):
        load_state(str(tmp_path / "cut.npz"))
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(StateError, match="not a readable"):
        load_state(str(tmp_path / "text.npz"))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".onespec-")] == []  # no temp leftovers


def test_check_state_lists_offending_keys():
    spec = onespec.get_spec("vgg11_cifar")
    st = init_state(spec, 0)
    del st["classifier.fc2.bias"]
    st["extra.weight"] = np.zeros(3, np.float32)
    st["classifier.fc1.weight"] = st["classifier.fc1.weight"].T.copy()
    st["features.stage1.conv1.conv.bias"] = st["features.stage1.conv1.conv.bias"].astype(np.int32)
    with pytest.raises(StateError) as info:
        check_state(spec, st)
    msg = str(info.value)
    assert "missing: classifier.fc2.bias" in msg and "unexpected: extra.weight" in msg
    assert "classifier.fc1.weight (512, 100) != (100, 512)" in msg and "conv1.conv.bias (int32)" in msg


@pytest.mark.parametrize("name", TORCHVISION_MODELS)
def test_torchvision_name_map_is_a_bijection(name):
    names = torchvision_names(onespec.get_spec(name))
    assert len(set(names.values())) == len(names)


def test_torchvision_names_examples():
    n = torchvision_names(onespec.get_spec("squeezenet1_0"))
    assert n["features.fire2.expand.expand3x3.conv.weight"] == "features.3.expand3x3.weight"
    assert n["classifier.final_conv.bias"] == "classifier.1.bias"
    n = torchvision_names(onespec.get_spec("mobilenet_v2"))
    assert n["features.stage2.block1.body.project.bn.running_var"] == "features.3.conv.3.running_var"
    assert n["features.last_conv.conv.weight"] == "features.18.0.weight"
    n = torchvision_names(onespec.get_spec("resnet50"))
    assert n["layer1.block0.residual.shortcut.bn.weight"] == "layer1.0.downsample.1.weight"
    n = torchvision_names(onespec.get_spec("mobilenet_v3_small"))
    assert n["features.block1.se.gate.fc2.weight"] == "features.1.block.1.fc2.weight"
    with pytest.raises(onespec.OnespecError, match="no torchvision counterpart"):
        torchvision_names(onespec.get_spec("se_resnet50"))


# ------------------------------------------------------------- the oracle, against naive loops
def _naive_conv(x, w, b, s, p, d, g):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, [(0, 0), (0, 0), (p, p), (p, p)])
    oh, ow = (h + 2 * p - d * (kh - 1) - 1) // s + 1, (wd + 2 * p - d * (kw - 1) - 1) // s + 1
    y = np.zeros((n, o, oh, ow))
    for oc in range(o):
        gi = oc // (o // g)
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, gi * cg:(gi + 1) * cg, i * s:i * s + d * (kh - 1) + 1:d, j * s:j * s + d * (kw - 1) + 1:d]
                y[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3)) + b[oc]
    return y


@pytest.mark.parametrize("s,p,d,g", [(1, 1, 1, 1), (2, 0, 1, 2), (2, 1, 2, 4), (1, 2, 1, 4)])
def test_reference_conv_matches_naive(s, p, d, g):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 9, 8))
    w = rng.standard_normal((8, 4 // g, 3, 3))
    b = rng.standard_normal(8)
    np.testing.assert_allclose(ev.conv(x, w, b, s, ((p, p),) * 2, d, g), _naive_conv(x, w, b, s, p, d, g), rtol=1e-10, atol=1e-10)


def _naive_pool(x, k, s, p, ceil, kind, include_pad=True):
    h = x.shape[2]
    out = -(-(h + 2 * p - k) // s) + 1 if ceil else (h + 2 * p - k) // s + 1
    if ceil and (out - 1) * s >= h + p:
        out -= 1
    y = np.zeros(x.shape[:2] + (out, out))
    for i in range(out):
        for j in range(out):
            h0, w0 = i * s - p, j * s - p
            h1, w1 = min(h0 + k, h + p), min(w0 + k, h + p)
            win = x[:, :, max(h0, 0):min(h1, h), max(w0, 0):min(w1, h)]
            if kind == "max":
                y[:, :, i, j] = win.max(axis=(2, 3))
            else:
                count = (h1 - h0) * (w1 - w0) if include_pad else win.shape[2] * win.shape[3]
                y[:, :, i, j] = win.sum(axis=(2, 3)) / count
    return y


@pytest.mark.parametrize("k,s,p,ceil", [(3, 2, 0, True), (3, 2, 1, True), (2, 2, 0, False), (3, 2, 1, False),
                                        (3, 3, 1, True)])
def test_reference_pools_match_naive(k, s, p, ceil):
    x = np.random.default_rng(1).standard_normal((1, 2, 8, 8))
    np.testing.assert_allclose(ev.maxpool(x, k, s, ((p, p),) * 2, ceil), _naive_pool(x, k, s, p, ceil, "max"))
    for inc in (True, False):
        np.testing.assert_allclose(ev.avgpool(x, k, s, ((p, p),) * 2, ceil, inc), _naive_pool(x, k, s, p, ceil, "avg", inc))


# (before, after) as MindSpore's pad_mode="same" pads (measured against explicit padding)
@pytest.mark.parametrize("n,k,s,pads", [(8, 3, 2, (0, 1)), (9, 3, 2, (1, 1)), (8, 5, 2, (1, 2)), (7, 2, 2, (0, 1)),
                                        (8, 3, 1, (1, 1)), (6, 1, 2, (0, 0))])
def test_same_padding_is_tensorflows_rule(n, k, s, pads):
    """'same': output ceil(n / s), the odd padding pixel after (bottom/right); the reference
    pads explicitly and must equal a window-by-window evaluation of that rule."""
    from onespec.spec.nodes import MaxPool, Conv
    x = np.random.default_rng(2).standard_normal((1, 2, n, n))
    (b, a), _ = MaxPool(name="p", kernel=k, stride=s, padding="same").pads((2, n, n))
    assert (b, a) == pads
    out = -(-n // s)
    assert Conv(name="c", out_channels=3, kernel=k, stride=s, padding="same").infer((2, n, n), "c") == (3, out, out)
    xm = np.pad(x, [(0, 0), (0, 0), (b, a), (b, a)], constant_values=-np.inf)
    xz = np.pad(x, [(0, 0), (0, 0), (b, a), (b, a)])
    inside = np.pad(np.ones_like(x), [(0, 0), (0, 0), (b, a), (b, a)])
    want_max = np.array([[[[xm[0, c, i * s:i * s + k, j * s:j * s + k].max() for j in range(out)] for i in range(out)]
                          for c in range(2)]])
    want_avg = np.array([[[[xz[0, c, i * s:i * s + k, j * s:j * s + k].sum() / inside[0, c, i * s:i * s + k,
                                                                                     j * s:j * s + k].sum()
                            for j in range(out)] for i in range(out)] for c in range(2)]])
    np.testing.assert_allclose(ev.maxpool(x, k, s, ((b, a),) * 2, False), want_max)
    np.testing.assert_allclose(ev.avgpool(x, k, s, ((b, a),) * 2, False, False), want_avg)


def test_reference_adaptive_pool_and_shift():
    x = np.arange(2 * 1 * 5 * 5, dtype=float).reshape(2, 1, 5, 5)
    y = ev.adaptive_avgpool(x, 3)
    assert y[0, 0, 0, 0] == x[0, 0, 0:2, 0:2].mean() and y[0, 0, 1, 1] == x[0, 0, 1:4, 1:4].mean()
    c = np.arange(6, dtype=float).reshape(1, 6, 1, 1)
    # groups of 2 channels x 3 groups: ((i + 1) % 3) * 2 + (j + 1) % 2
    assert ev.shift(c, 3).ravel().tolist() == [3, 2, 5, 4, 1, 0]


def test_reference_forward_records_every_node():
    spec = onespec.get_spec("squeezenet1_1", num_classes=5, input_size=64)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    y, shapes = evaluate(spec, init_state(spec, 0), x, record_shapes=True)
    assert y.shape == (2, 5) and y.dtype == np.float64
    assert shapes == onespec.analyze(spec).shapes()
    with pytest.raises(StateError, match="missing"):
        evaluate(spec, {}, x)


def test_bn_calibration_keeps_activations_order_one():
    spec = onespec.get_spec("micronet_m1")
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    raw = init_state(spec, 0)
    big = np.abs(evaluate(spec, raw, x)).max()
    state, y = cal.calibrate(spec, raw, x)
    assert set(state) == set(raw) and all(state[k].dtype == np.float32 for k in state)
    # M1 has no identity shortcut, so nothing is damped: only running statistics change
    assert all(np.array_equal(state[k], raw[k]) for k in raw if not k.endswith(("running_mean", "running_var")))
    assert np.abs(y).max() < 10 < big  # random statistics let MicroNet's logits grow large
    # the statistics are rounded to float32 before use: the output is exactly the returned state's
    np.testing.assert_allclose(evaluate(spec, state, x), y, rtol=0, atol=1e-12 * np.abs(y).max())


def _amplification(spec, state, x, rel=1e-6):
    d = np.random.default_rng(1).standard_normal(x.shape) * rel
    y, y2 = evaluate(spec, state, x), evaluate(spec, state, x + d)
    return float(np.abs(y2 - y).max() / np.abs(y).max()) / rel


@pytest.mark.slow
def test_calibration_damps_residual_bodies_so_deep_resnets_are_not_chaotic(monkeypatch):
    """Undamped, ResNet-152's calibrated weights amplify an input perturbation ~4000x (float32
    rounding then exceeds the 1e-4 numerics tolerance); with the bodies damped, ~40x."""
    spec = onespec.get_spec("resnet152", input_size=64)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64))
    raw = init_state(spec, 0)
    state, _ = cal.calibrate(spec, raw, x)
    bodies = [f"layer{s}.block{b}.residual.body.conv3.bn" for s, n in zip((1, 2, 3, 4), (3, 8, 36, 3))
              for b in range(n)]
    for bn in bodies:
        first = ".block0." in bn  # downsample blocks: conv shortcut, not damped
        want = raw[f"{bn}.weight"] if first else raw[f"{bn}.weight"] / cal.RESIDUAL_DAMPING
        np.testing.assert_allclose(state[f"{bn}.weight"], want, rtol=1e-6)
    assert _amplification(spec, state, x) < 200
    monkeypatch.setattr(cal, "RESIDUAL_DAMPING", 1.0)
    undamped, _ = cal.calibrate(spec, raw, x)
    assert _amplification(spec, undamped, x) > 1000


def test_calibration_damps_a_residual_bn_without_affine_through_its_variance(monkeypatch):
    from onespec.spec import BatchNorm, Conv, Identity, ModelMeta, ModelSpec, Parallel, Sequential
    body = Sequential(name="body", layers=[Conv(name="conv", in_channels=4, out_channels=4, kernel=3,
                                                padding=1, bias=False), BatchNorm(name="bn", affine=False)])
    spec = ModelSpec(name="t", input_shape=(4, 8, 8), meta=ModelMeta(family="test"),
                     layers=[Parallel(name="res", merge="add", branches=[body, Identity(name="shortcut")])])
    x = np.random.default_rng(0).standard_normal((2, 4, 8, 8))
    damped, y = cal.calibrate(spec, init_state(spec, 0), x)
    monkeypatch.setattr(cal, "RESIDUAL_DAMPING", 1.0)
    plain, y1 = cal.calibrate(spec, init_state(spec, 0), x)
    np.testing.assert_array_equal(damped["res.body.bn.running_mean"], plain["res.body.bn.running_mean"])
    np.testing.assert_allclose(damped["res.body.bn.running_var"], 16 * plain["res.body.bn.running_var"], rtol=1e-6)
    np.testing.assert_allclose(y - x, (y1 - x) / 4, rtol=1e-3)  # the body's output, at a quarter


# ------------------------------------------------------------------------------ hostile checkpoints
def _npz_bomb(path, name: str, elements: int) -> None:
    """An .npz whose one member declares ``elements`` float32 zeros (compressed ~1000x)."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open(name + ".npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (elements,)})
            for _ in range(elements * 4 >> 24):
                f.write(bytes(1 << 24))


@pytest.mark.parametrize("name", ["features.conv1.weight", "not.in.the.model"])
def test_weights_for_any_command_decompress_only_what_the_model_declares(tmp_path, name):
    """``--weights`` of train/eval/export/diff reads through ``convert.read_for``: a 256 MiB
    member in a 300 KB file is listed (skipped or unexpected), never inflated."""
    import tracemalloc

    from onespec.convert import read_for

    spec = onespec.get_spec("squeezenet1_1")
    bomb = str(tmp_path / "bomb.npz")
    _npz_bomb(bomb, name, 1 << 26)
    assert os.path.getsize(bomb) < 1 << 20
    tracemalloc.start()
    try:
        state, skipped, missing, unexpected = read_for(spec, bomb, here="numpy")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"{peak >> 20} MiB for a checkpoint of {os.path.getsize(bomb) >> 10} KB"
    assert not state and len(missing) == len(layout(spec)) - (name in layout(spec))
    assert skipped == ([f"{name} (67108864 in the file, 64x3x3x3 in the model)"] if name in layout(spec) else [])
    assert unexpected == ([] if name in layout(spec) else [name])


def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path):
    from onespec.convert import read_for

    spec = onespec.get_spec("squeezenet1_1")
    st = init_state(spec, 0)
    st["features.fire3.expand.expand3x3.conv.weight"][0, 0, 1, 1] = np.nan
    st["classifier.final_conv.bias"][:] = np.inf
    path = str(tmp_path / "nan.npz")
    save_state(st, path)
    for read in (lambda: load_state(path, spec), lambda: read_for(spec, path, here="numpy")):
        with pytest.raises(StateError, match=r"nan\.npz: tensor features\.fire3\.expand\.expand3x3\.conv\.weight "
                                             r"holds 1 NaN/inf value of 9216$"):
            read()
    assert np.isnan(load_state(path, finite=False)["features.fire3.expand.expand3x3.conv.weight"]).sum() == 1


def test_pickled_checkpoint_codec_chain_is_refused_within_its_budget():
    """The machine that reads .pdparams and CIFAR batches: a hex-codec chain is refused at its
    first link, and memo references cannot multiply what a latin-1 string costs."""
    import tracemalloc

    from onespec.readers import NUMPY_ARRAYS, Budget, ReadError, unpickle

    head, latin1 = b"\x80\x02c_codecs\nencode\nq\x000", b"X\x06\x00\x00\x00latin1"
    seed = b"X\x00\x00\x01\x00" + b"ab" * (1 << 15)               # a 64 KiB string
    chain = head + b"h\x00h\x00" + seed + latin1 + b"\x86R" + b"X\x03\x00\x00\x00hex\x86R."
    with pytest.raises(ReadError, match="_codecs.encode with 'hex'"):
        unpickle(chain, NUMPY_ARRAYS, Budget(1 << 20, "x"))
    one = unpickle(head + b"h\x00" + seed + latin1 + b"\x86R.", NUMPY_ARRAYS, Budget(1 << 20, "x"))
    assert one == b"ab" * (1 << 15)
    # the same string encoded 20000 times through the memo: 1.3 GB if nothing counted
    many = head + seed + b"q\x010(" + (b"h\x00h\x01" + latin1 + b"\x86R") * 20000 + b"l."
    tracemalloc.start()
    try:
        with pytest.raises(ReadError, match="an encoded string needs 65536 bytes, over its budget"):
            unpickle(many, NUMPY_ARRAYS, Budget(2 * len(many) + (1 << 20), "many.pdparams"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_torch_checkpoint_is_vetted_before_torch_loads_it(tmp_path):
    require("torch")
    import zipfile

    import torch

    from onespec.backends import load_backend

    read = load_backend("torch").read
    good = str(tmp_path / "good.pth")
    torch.save({"w": torch.ones(3), "b": torch.zeros(2, dtype=torch.bfloat16)}, good)
    assert read(good)["w"].tolist() == [1, 1, 1]
    with zipfile.ZipFile(good) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    pkl = next(n for n in members if n.endswith("data.pkl"))

    def variant(name, compress=zipfile.ZIP_STORED, **replace):
        path = str(tmp_path / name)
        with zipfile.ZipFile(path, "w", compression=compress) as zf:
            for n, data in {**members, **replace}.items():
                zf.writestr(n, data)
        return path

    chain = b"\x80\x02c_codecs\nencode\nq\x00X\x02\x00\x00\x00abX\x03\x00\x00\x00hex\x86R."
    with pytest.raises(StateError, match=r"codec\.pth: refusing to load _codecs\.encode"):
        read(variant("codec.pth", **{pkl: chain}))
    with pytest.raises(StateError, match=r"deflated\.pth: member .* is compressed"):
        read(variant("deflated.pth", zipfile.ZIP_DEFLATED))
    nan = str(tmp_path / "nan.pth")
    torch.save({"w": torch.tensor([1.0, float("nan")])}, nan)
    with pytest.raises(StateError, match=r"nan\.pth: tensor w holds 1 NaN/inf value of 2"):
        read(nan)
    # a legacy (pre-zip) file: read, unless its pickle declares storages larger than the file
    legacy = str(tmp_path / "legacy.pth")
    torch.save({"w": torch.arange(108, dtype=torch.float32)}, legacy, _use_new_zipfile_serialization=False)
    assert read(legacy)["w"].tolist() == list(range(108))
    raw = open(legacy, "rb").read()
    at = raw.index(b"K\x6c", raw.index(b"cpu"))                # the storage's 108 elements (BININT1)
    open(legacy, "wb").write(raw[:at] + b"J" + (1 << 30).to_bytes(4, "little") + raw[at + 2:])
    with pytest.raises(StateError, match=r"legacy\.pth: storages declare 4294967296 bytes but the file holds"):
        read(legacy)


def test_pickle_nesting_is_bounded():
    """Tuples nested a million deep would overflow C recursion when hashed (a dict key)."""
    from onespec.readers import NUMPY_ARRAYS, Budget, ReadError, unpickle

    deep = b"\x80\x02}N" + b"\x85" * 1_000_000 + b"K\x01s."
    with pytest.raises(ReadError, match="nested deeper than 64"):
        unpickle(deep, NUMPY_ARRAYS, Budget(1 << 26, "deep"))
    assert unpickle(b"\x80\x02}N" + b"\x85" * 10 + b"K\x01s.", NUMPY_ARRAYS, Budget(1 << 20, "x")) == {
        ((((((((((None,),),),),),),),),),): 1}
