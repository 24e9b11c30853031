"""Training end to end in every framework: each data source, evaluation metrics, the same
batches everywhere, resume, freezing, transfer from a checkpoint, and errors before training."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import require
from fixtures_data import cifar10, image_folder, mat_cube, tiny
from onespec import data as D
from onespec.backends import FRAMEWORKS
from onespec.spec.nodes import Act, BatchNorm, Conv, Dropout, Flatten, GlobalAvgPool, Linear
from onespec.training import TrainError, evaluate, load_recipe, train
from onespec.training.engine import open_data, transforms_for
from onespec.weights import init_state, save_state
from onespec.zoo.common import model

pytestmark = pytest.mark.frameworks
FAST = {"batch_size": 16, "optimizer.name": "adam", "optimizer.lr": 0.01, "eval_batch_size": 256}


def _cube_net(bands: int, patch: int, classes: int):
    return model("cube", (1, bands, patch, patch),
                 [Conv(name="conv", out_channels=6, kernel=3, bias=False), BatchNorm(name="bn"),
                  Act(name="relu", fn="relu"), GlobalAvgPool(name="pool"), Flatten(name="flatten"),
                  Linear(name="fc", out_features=classes)],
                 family="test", paper="", source="", num_classes=classes)


def _source(kind: str, tmp_path):
    if kind == "digits":
        return {"data.test_ratio": 0.5}, tiny(10)
    if kind == "imagefolder":
        return {"data.source": "imagefolder", "data.root": image_folder(str(tmp_path / "if"), per_class=16)}, tiny(3)
    if kind == "cifar10":
        return {"data.source": "cifar10", "data.root": cifar10(str(tmp_path / "c"), per_batch=16)}, tiny(10)
    cube, gt = mat_cube(str(tmp_path / "m"))
    return ({"data.source": "mat", "data.root": cube, "data.gt": gt, "data.pca": 5, "data.patch": 7,
             "data.test_ratio": 0.5}, _cube_net(5, 7, 3))


# make test: the digits in every framework and each file source in one framework (the batches are
# framework-independent, which the digest check proves); make slow: every source in every framework
MATRIX = [pytest.param(k, b, marks=() if k == "digits" or (k, b) in {("imagefolder", "paddle"), ("cifar10", "mindspore"),
                                                                    ("mat", "torch")} else pytest.mark.slow)
          for k in ("digits", "imagefolder", "cifar10", "mat") for b in FRAMEWORKS]


@pytest.mark.parametrize("kind,backend", MATRIX)
def test_train_then_evaluate(kind, backend, tmp_path):
    require(backend)
    ov, spec = _source(kind, tmp_path)
    recipe = load_recipe(None, {**FAST, **ov, "max_steps": 12, "epochs": 50})
    hist = train(spec, recipe, backend=backend, out=str(tmp_path / "run"), progress=False)
    losses = [r["loss"] for r in hist.steps]
    assert len(losses) == 12 and np.mean(losses[-4:]) < np.mean(losses[:4]), losses

    # every framework trained on exactly the batches the loader makes without any framework
    tr, _ = open_data(recipe)
    loader = D.Loader(tr, transforms_for(recipe, spec, True), batch_size=16, shuffle=True, seed=0, drop_last=True)
    h = None
    for x, y in list(loader.epoch(0))[:12]:
        h = D.digest(x, y, h)
    assert hist.epochs[0]["data_digest"] == h.hexdigest()

    ext = {"torch": ".pth", "paddle": ".pdparams", "mindspore": ".ckpt"}[backend]
    run = tmp_path / "run"
    assert (run / "checkpoints" / f"best{ext}").exists() and (run / "curves.png").stat().st_size > 10_000
    res = evaluate(spec, str(run / "checkpoints" / f"last{ext}"), recipe, backend=backend, out=str(run / "eval"))
    cm = np.array(res["confusion"])
    assert cm.sum() == res["samples"] == len(open_data(recipe)[1])
    per = cm.diagonal() / np.maximum(cm.sum(1), 1)
    assert np.allclose(per, [res["per_class"][c] for c in res["classes"]])
    assert res["top1"] == pytest.approx(cm.trace() / cm.sum()) == pytest.approx(hist.final["val_acc"])
    assert (run / "eval" / "confusion.png").stat().st_size > 10_000


@pytest.mark.parametrize("backend", ["torch", "paddle", pytest.param("mindspore", marks=pytest.mark.slow)])
def test_resume_equals_uninterrupted_and_freeze_keeps_tensors(backend, tmp_path):
    require(backend)
    from onespec.backends import load_backend

    be = load_backend(backend)
    spec = tiny(10)
    ext = {"torch": ".pth", "paddle": ".pdparams", "mindspore": ".ckpt"}[backend]
    base = {**FAST, "data.test_ratio": 0.9, "epochs": 2, "schedule.name": "cosine", "optimizer.weight_decay": 1e-3}
    ha = train(spec, load_recipe(None, base), backend=backend, out=str(tmp_path / "a"), progress=False)
    # interrupted inside the second epoch (11 steps per epoch), then continued
    train(spec, load_recipe(None, {**base, "max_steps": 17}), backend=backend, out=str(tmp_path / "b"), progress=False)
    hb = train(spec, load_recipe(None, base), backend=backend, out=str(tmp_path / "b"), resume=True, progress=False)
    assert [r["step"] for r in hb.steps] == list(range(1, 23)) == [r["step"] for r in ha.steps]
    def state(run):
        net = be.build(spec)
        be.load(net, str(tmp_path / run / "checkpoints" / f"last{ext}"))
        return be.get_state(net, spec)
    a, b = state("a"), state("b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    ra = [json.loads(l) for l in open(tmp_path / "a" / "metrics.jsonl")]
    rb = [json.loads(l) for l in open(tmp_path / "b" / "metrics.jsonl")]
    assert [r["loss"] for r in ra if r["kind"] == "step"] == [r["loss"] for r in rb if r["kind"] == "step"]

    # freeze the features: every tensor under it (BN statistics included) stays bit-identical
    start = init_state(spec, 0, scheme="train")
    hist = train(spec, load_recipe(None, {**FAST, "max_steps": 5, "freeze": ["features"]}), backend=backend,
                 out=str(tmp_path / "f"), progress=False)
    net = be.build(spec)
    be.load(net, str(tmp_path / "f" / "checkpoints" / f"last{ext}"))
    after = be.get_state(net, spec)
    frozen = [k for k in after if k.startswith("features.")]
    assert frozen and all(np.array_equal(after[k], start[k]) for k in frozen)
    assert not np.array_equal(after["fc.weight"], start["fc.weight"]) and hist.steps


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_dropout_masks_are_functions_of_the_seed_and_step(backend, tmp_path):
    """Two runs of one recipe on a network with dropout take the same steps: each step's masks
    come from its seed (MindSpore's ``nn.Dropout`` fixed its kernel's seeds when built, and
    the two runs parted at the first step)."""
    require(backend)
    spec = model("drop", (3, 16, 16), [Conv(name="conv", out_channels=8, kernel=3), Act(name="relu", fn="relu"),
                                       GlobalAvgPool(name="pool"), Flatten(name="flatten"),
                                       Dropout(name="drop", p=0.5), Linear(name="fc", out_features=10)],
                 family="test", paper="", source="", num_classes=10)
    recipe = load_recipe(None, {**FAST, "max_steps": 3})
    runs = [[r["loss"] for r in train(spec, recipe, backend=backend, out=str(tmp_path / f"run{i}"),
                                      progress=False).steps] for i in range(2)]
    assert runs[0] == runs[1] and len(set(runs[0])) == 3, runs


def test_transfer_skips_a_head_of_another_size_and_rejects_other_architectures(tmp_path):
    require("torch", "paddle")
    import onespec

    # a 5-class "pretrained" model saved by Paddle, fine-tuned to 10 classes in torch
    src = tiny(5)
    pre = init_state(src, 7)
    pnet = onespec.build(src, "paddle")
    from onespec.backends import load_backend
    pb = load_backend("paddle")
    pb.load_state(pnet, src, pre)
    pb.save(pnet, str(tmp_path / "pre.pdparams"))
    hist = train(tiny(10), load_recipe(None, {**FAST, "max_steps": 3, "weights": str(tmp_path / "pre.pdparams"),
                                              "freeze": ["features"]}),
                 backend="torch", out=str(tmp_path / "ft"), progress=False)
    assert sorted(s.split(" ")[0] for s in hist.skipped) == ["fc.bias", "fc.weight"]
    import torch
    sd = torch.load(tmp_path / "ft" / "checkpoints" / "last.pth", weights_only=True)
    assert np.array_equal(sd["features.b2.conv.weight"].numpy(), pre["features.b2.conv.weight"])

    save_state(init_state(onespec.get_spec("resnet18", num_classes=10, input_size=32)), str(tmp_path / "r18.npz"))
    with pytest.raises(TrainError, match=r"r18.npz is not a checkpoint of tiny \(1 of 12 tensors fit\).*missing"):
        train(tiny(10), load_recipe(None, {**FAST, "max_steps": 1, "weights": str(tmp_path / "r18.npz")}),
              backend="torch", out=str(tmp_path / "x"), progress=False)
    with pytest.raises(TrainError, match="is not a checkpoint of tiny"):
        evaluate(tiny(10), str(tmp_path / "pre.pdparams"), load_recipe(None, {}), backend="torch")
    assert not (tmp_path / "x").exists()


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))}
    return subprocess.run([sys.executable, "-m", "onespec", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_cli_train_eval_and_one_line_errors(tmp_path):
    require("torch")
    out = str(tmp_path / "run")
    r = _cli("train", "fixtures_data:tiny", "--max-steps", "4", "--out", out, "--recipe-set", "optimizer.lr=0.01",
             "--recipe-set", "image_size=16", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "validation top-1" in r.stdout and os.path.exists(os.path.join(out, "metrics.jsonl"))
    r = _cli("eval", "fixtures_data:tiny", "--weights", os.path.join(out, "checkpoints", "best.pth"), "--out", out)
    assert r.returncode == 0, r.stderr
    assert "top-1" in r.stdout and len(r.stdout.splitlines()) == 12  # header + 10 classes + files
    r = _cli("train", "fixtures_data:tiny", "--max-steps", "4", "--out", out)
    assert r.returncode == 2 and "already holds a run" in r.stderr
    cases = [(["--source", "imagefolder", "--data", str(tmp_path / "missing")], "no such data folder"),
             (["--recipe-set", "optimiser.lr=1"], "optimiser"),
             (["--set", "optimizer.lr=1"], "--recipe-set optimizer.lr=1"),
             (["--freeze", "backbone"], "has no node 'backbone'")]
    for extra, msg in cases:
        r = _cli("train", "fixtures_data:tiny", "--out", str(tmp_path / "e"), *extra)
        assert r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr, (extra, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "e").exists()
