"""Recipe, LR schedule and optimizer rules: the same numbers as torch's own optimizers and
schedulers, and the same rule executed on every framework's tensors."""
import types

import numpy as np
import pytest

from conftest import require
from onespec.training import RecipeError, load_recipe, schedule
from onespec.training import optim
from onespec.training.recipe import Optimizer

NP = types.SimpleNamespace(sqrt=np.sqrt, zeros_like=np.zeros_like)


def test_recipe_yaml_overrides_and_unknown_fields(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("epochs: 3\noptimizer: {name: adamw, lr: 0.002}\ntrain_transforms:\n  - {op: hflip}\n")
    r = load_recipe(str(p), {"optimizer.weight_decay": 0.05, "data.source": "digits"})
    assert (r.epochs, r.optimizer.name, r.optimizer.weight_decay) == (3, "adamw", 0.05)
    assert r.train_transforms[0].op == "hflip"
    p.write_text("epochs: 3\noptimiser: {name: sgd}\n")
    with pytest.raises(RecipeError, match="optimiser"):
        load_recipe(str(p))
    with pytest.raises(RecipeError, match="optimizer.name"):
        load_recipe(None, {"optimizer.name": "lamb"})
    with pytest.raises(RecipeError, match="data.root is required"):
        load_recipe(None, {"data.source": "imagefolder"})
    p.write_text("- 1\n- 2\n")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(str(p))


def test_onecycle_matches_torch_step_for_step():
    require("torch")
    import torch

    for three_phase, anneal in ((False, "cos"), (True, "linear")):
        r = load_recipe(None, {"epochs": 4, "optimizer.lr": 0.1, "schedule.name": "onecycle",
                               "schedule.three_phase": three_phase, "schedule.anneal": anneal})
        lrs, moms = schedule(r, 25)
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, weight_decay=5e-4)
        sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=4, steps_per_epoch=25,
                                                  three_phase=three_phase, anneal_strategy=anneal)
        ref_lr, ref_m = [], []
        for _ in range(100):
            ref_lr.append(opt.param_groups[0]["lr"])
            ref_m.append(opt.param_groups[0]["momentum"])
            opt.step()
            sch.step()
        np.testing.assert_allclose(lrs, ref_lr, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(moms, ref_m, rtol=1e-12)


def test_cosine_warmup_step_and_epoch_granularity():
    require("torch")
    import torch

    r = load_recipe(None, {"epochs": 6, "optimizer.lr": 0.05, "schedule.name": "cosine", "schedule.by": "epoch"})
    lrs, _ = schedule(r, 10)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.05)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6)
    ref = []
    for _ in range(6):
        ref += [opt.param_groups[0]["lr"]] * 10
        opt.step()
        sch.step()
    np.testing.assert_allclose(lrs, ref, rtol=1e-12)
    r = load_recipe(None, {"epochs": 5, "optimizer.lr": 0.4, "schedule.name": "cosine", "schedule.warmup_epochs": 1})
    lrs, _ = schedule(r, 4)
    np.testing.assert_allclose(lrs[:4], [0, 0.1, 0.2, 0.3])
    assert lrs[4] == pytest.approx(0.4) and lrs[-1] < 0.01 and np.all(np.diff(lrs[4:]) < 0)
    r = load_recipe(None, {"epochs": 5, "optimizer.lr": 1.0, "schedule.name": "step", "schedule.milestones": [2, 4]})
    assert list(schedule(r, 2)[0]) == pytest.approx([1, 1, 1, 1, .1, .1, .1, .1, .01, .01])


def _reference_run(opt, p0, grads, lrs):
    p, st = p0.astype(np.float64), optim.init(opt, p0, NP)
    for t, (g, lr) in enumerate(zip(grads, lrs), 1):
        p = optim.update(opt, p, g.astype(np.float64), st, lr, t, NP, decay=True)
    return p


CASES = [dict(name="sgd", momentum=0.9, weight_decay=5e-4), dict(name="sgd", momentum=0.9, nesterov=True, weight_decay=1e-3),
         dict(name="momentum", momentum=0.9, weight_decay=1e-4), dict(name="adam", weight_decay=1e-2, eps=1e-6),
         dict(name="adamw", weight_decay=0.05, betas=(0.8, 0.99))]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"] + ("-nesterov" if c.get("nesterov") else ""))
def test_update_rule_equals_torch_optimizers(case):
    require("torch")
    import torch

    opt = Optimizer(lr=0.05, **case)
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(7, 5)).astype(np.float32)
    grads = [rng.normal(size=p0.shape).astype(np.float32) for _ in range(6)]
    lrs = [0.05, 0.04, 0.03, 0.05, 0.01, 0.02]
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    if opt.name in ("sgd", "momentum"):
        topt = torch.optim.SGD([tp], lr=0.05, momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=opt.weight_decay)
    else:
        cls = torch.optim.Adam if opt.name == "adam" else torch.optim.AdamW
        topt = cls([tp], lr=0.05, betas=opt.betas, eps=opt.eps, weight_decay=opt.weight_decay)
    for g, lr in zip(grads, lrs):
        topt.param_groups[0]["lr"] = lr
        tp.grad = torch.from_numpy(g)
        topt.step()
    np.testing.assert_allclose(_reference_run(opt, p0, grads, lrs), tp.detach().numpy(), rtol=2e-5, atol=2e-6)


@pytest.mark.frameworks
@pytest.mark.parametrize("backend", ["torch", "paddle", "mindspore"])
def test_update_rule_on_framework_tensors(backend):
    require(backend)
    import importlib

    from onespec.backends import load_backend

    load_backend(backend)
    ops = importlib.import_module(f"onespec.backends.{backend}.train").Session
    tensor = {"torch": lambda a: __import__("torch").from_numpy(a),
              "paddle": lambda a: __import__("paddle").to_tensor(a),
              "mindspore": lambda a: __import__("mindspore").Tensor(a)}[backend]
    rng = np.random.default_rng(1)
    p0 = rng.normal(size=(4, 6)).astype(np.float32)
    grads = [rng.normal(size=p0.shape).astype(np.float32) for _ in range(4)]
    for case in CASES:
        opt = Optimizer(lr=0.05, **case)
        p, st = tensor(p0.copy()), optim.init(opt, tensor(p0), ops)
        for t, g in enumerate(grads, 1):
            p = optim.update(opt, p, tensor(g), st, 0.05, t, ops, decay=True, momentum=0.85 if t == 3 else None)
        ref, st_ref = p0.astype(np.float64), optim.init(opt, p0, NP)
        for t, g in enumerate(grads, 1):
            ref = optim.update(opt, ref, g.astype(np.float64), st_ref, 0.05, t, NP, decay=True, momentum=0.85 if t == 3 else None)
        got = p.numpy() if hasattr(p, "numpy") else p.asnumpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6, err_msg=f"{backend} {case}")


def test_decay_exemptions_and_clipping():
    assert optim.decays(Optimizer(name="sgd", weight_decay=1e-4), "gamma")
    assert not optim.decays(Optimizer(name="momentum", weight_decay=1e-4), "bias")
    assert optim.decays(Optimizer(name="momentum", weight_decay=1e-4), "weight")
    assert not optim.decays(Optimizer(name="adamw", weight_decay=0.0), "weight")
    assert optim.clip_factor(10.0, 1.0) == pytest.approx(0.1, rel=1e-6) and optim.clip_factor(0.5, 1.0) == 1.0
