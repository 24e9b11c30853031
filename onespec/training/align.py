"""``onespec align``: train the same model from the same state on the same batches with the same
per-step LR for N steps in several frameworks (one process each), and compare the steps.

Per step: the loss of each framework and its relative difference to the first framework's, the
LR, the gradient norm; at logarithmically spaced steps the relative L2 distance between the
frameworks' parameters (BN statistics included). Dropout is switched off (each framework draws
its own masks; the porting guides' ladder does the same). The recipes each framework ran are
compared field by field, so a failure names the field that differs when one does.

Tolerances (``TOL``) come from measurements (``docs/training.md``, "Alignment"): float32 in three
frameworks differs by ~1e-7 relative per op, and training amplifies it step by step; the bounds
are set an order of magnitude above what 20 steps of the zoo models reach, and far below what a
real convention difference (weight decay 5e-4 vs 1e-3, a BN momentum) produces.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..backends import FRAMEWORKS, check_backend
from ..errors import OnespecError
from ..spec import ModelSpec
from ..weights import load_state
from . import report as R
from .recipe import Recipe, load_recipe

# relative loss difference at step t may grow as LOSS_TOL0 * LOSS_GROWTH ** t (measured ~1.3x per
# step at most); parameters' relative distance likewise.
TOL = {"loss0": 1e-5, "loss_growth": 1.35, "loss_cap": 2e-2, "param0": 1e-6, "param_growth": 1.35, "param_cap": 1e-2}


class AlignError(OnespecError, ValueError):
    pass


def loss_tol(t: int) -> float:
    return min(TOL["loss0"] * TOL["loss_growth"] ** t, TOL["loss_cap"])


def param_tol(t: int) -> float:
    return min(TOL["param0"] * TOL["param_growth"] ** t, TOL["param_cap"])


def without_dropout(spec: ModelSpec) -> ModelSpec:
    def walk(d):
        if isinstance(d, dict):
            if d.get("op") == "dropout":
                d["p"] = 0.0
            for v in d.values():
                walk(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)
    doc = json.loads(spec.model_dump_json())
    walk(doc)
    return ModelSpec.model_validate(doc)


def snapshot_steps(n: int) -> tuple[int, ...]:
    steps = {0, n}
    k = 1
    while k < n:
        steps.add(k)
        k *= 2
    return tuple(sorted(steps))


@dataclass
class AlignReport:
    model: str
    backends: list[str]
    steps: int
    rows: list[dict]
    params: list[dict]
    recipe_diffs: dict[str, list[str]]
    digests_equal: bool
    failures: list[str] = field(default_factory=list)
    env: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def table(self) -> str:
        ref = self.backends[0]
        head = f"{'step':>4}  {'lr':>9}  " + "  ".join(f"{'loss ' + b:>16}" for b in self.backends) + "  " + \
               "  ".join(f"{'dloss ' + b:>16}" for b in self.backends[1:]) + "  " + \
               "  ".join(f"{'gnorm ' + b:>16}" for b in self.backends)
        out = [f"onespec align {self.model}: {self.steps} steps, reference {ref}", head]
        for r in self.rows:
            out.append(f"{r['step']:>4}  {r['lr']:9.3g}  " + "  ".join(f"{r['loss'][b]:16.7f}" for b in self.backends)
                       + "  " + "  ".join(f"{r['dloss'][b]:16.2e}" for b in self.backends[1:])
                       + "  " + "  ".join(f"{r['grad_norm'][b]:16.6g}" for b in self.backends))
        out.append("parameter distance to " + ref + " (relative L2, all tensors / worst tensor):")
        for p in self.params:
            out.append(f"  step {p['step']:>3}: " + "  ".join(
                f"{b} {p['rel'][b]:.2e} / {p['worst'][b]:.2e} ({p['worst_name'][b]})" for b in self.backends[1:]))
        out.append("same batches in every framework: " + ("yes" if self.digests_equal else "NO"))
        out.append("ALIGNED" if self.ok else "NOT ALIGNED:\n  " + "\n  ".join(self.failures))
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {"model": self.model, "backends": self.backends, "steps": self.steps, "ok": self.ok,
                "failures": self.failures, "recipe_diffs": self.recipe_diffs, "digests_equal": self.digests_equal,
                "tolerances": TOL, "rows": self.rows, "params": self.params, "environment": self.env}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _abs_paths(recipe: Recipe) -> Recipe:
    upd = {}
    data = recipe.data.model_copy(update={k: os.path.abspath(getattr(recipe.data, k))
                                          for k in ("root", "gt") if getattr(recipe.data, k)})
    upd["data"] = data
    if recipe.weights:
        upd["weights"] = os.path.abspath(recipe.weights)
    return recipe.model_copy(update=upd)


def align(model, recipe: Recipe | str | None = None, *, backends=FRAMEWORKS, steps: int = 20, overrides=None,
          per_backend: dict[str, dict] | None = None, out: str | None = None) -> AlignReport:
    """Align ``model`` over ``steps`` training steps in ``backends`` (the first is the reference).
    ``per_backend``: recipe overrides for one framework only (to find what a difference does)."""
    from .._proc import run_child
    from .engine import _model_overrides, open_data, replace_head, resolve_model

    backends = [check_backend(b, FRAMEWORKS) for b in backends]
    if len(backends) < 2 or len(set(backends)) != len(backends):
        raise AlignError(f"align needs two or more different frameworks, got {backends}")
    per_backend = per_backend or {}
    for b in per_backend:
        if b not in backends:
            raise AlignError(f"overrides for {b}, which is not among --backends {','.join(backends)}")
    base = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, overrides)
    if isinstance(recipe, Recipe) and overrides:
        base = load_recipe(None, overrides, base=recipe.model_dump(exclude_unset=True))
    base = _abs_paths(base.model_copy(update={"max_steps": steps, "data": base.data.model_copy(update={"workers": 0})}))
    recipes = {b: load_recipe(None, per_backend.get(b, {}), base=json.loads(base.model_dump_json())) for b in backends}
    train_src, _ = open_data(base)  # every input checked before any framework starts
    k = len(train_src.classes)
    spec = model if isinstance(model, ModelSpec) else resolve_model(model or base.model, _model_overrides(base),
                                                                     None if base.head else k)
    if base.head and not isinstance(model, ModelSpec):
        spec = replace_head(spec, base.head, k)
    spec = without_dropout(spec)
    out = out or f"align-{spec.name}"
    os.makedirs(out, exist_ok=True)
    snaps = snapshot_steps(steps)
    spec_path = os.path.join(out, "spec.json")
    with open(spec_path, "w") as f:
        f.write(spec.model_dump_json())
    env = {}
    for b in backends:
        run_dir = os.path.join(out, b)
        if os.path.exists(os.path.join(run_dir, "run.json")):
            import shutil
            shutil.rmtree(run_dir)
        rp = os.path.join(out, f"recipe-{b}.json")
        with open(rp, "w") as f:
            f.write(recipes[b].model_dump_json())
        t0 = time.perf_counter()
        code, so, se = run_child(["-m", "onespec.training.align", b, os.path.abspath(spec_path), os.path.abspath(rp),
                                  os.path.abspath(run_dir), ",".join(map(str, snaps))])
        if code != 0:
            text = se.decode(errors="replace")
            lines = [ln for ln in text.splitlines() if ln.startswith("onespec: error: ")]
            raise AlignError(f"{b}: " + (lines[-1][16:] if lines else text[-1500:]))
        env[b] = {**json.loads(so.decode().strip().splitlines()[-1]), "seconds": round(time.perf_counter() - t0, 1)}
    rep = compare(spec.name, backends, out, recipes, steps, snaps)
    rep.env = env
    R.write_json(rep.to_dict(), os.path.join(out, "align.json"))
    with open(os.path.join(out, "align.txt"), "w") as f:
        f.write(rep.table() + "\n")
    plot(rep, os.path.join(out, "align.png"))
    return rep


def compare(name: str, backends: list[str], out: str, recipes: dict, steps: int, snaps) -> AlignReport:
    ref = backends[0]
    metrics = {b: [json.loads(l) for l in open(os.path.join(out, b, "metrics.jsonl"))] for b in backends}
    per_step = {b: {r["step"]: r for r in metrics[b] if r["kind"] == "step"} for b in backends}
    digests = {b: [r["data_digest"] for r in metrics[b] if r["kind"] == "epoch"] for b in backends}
    flat_ref = _flat(json.loads(recipes[ref].model_dump_json()))
    diffs = {}
    for b in backends[1:]:
        fb = _flat(json.loads(recipes[b].model_dump_json()))
        d = [f"{key}: {fb.get(key)!r} in {b}, {flat_ref.get(key)!r} in {ref}" for key in sorted(set(fb) | set(flat_ref))
             if fb.get(key) != flat_ref.get(key)]
        if d:
            diffs[b] = d
    rows, failures = [], []
    for t in range(1, steps + 1):
        row = {"step": t, "lr": per_step[ref][t]["lr"], "loss": {}, "dloss": {}, "grad_norm": {}, "lr_by": {}}
        for b in backends:
            r = per_step[b][t]
            row["loss"][b], row["grad_norm"][b], row["lr_by"][b] = r["loss"], r["grad_norm"], r["lr"]
            if b != ref:
                row["dloss"][b] = abs(r["loss"] - per_step[ref][t]["loss"]) / max(abs(per_step[ref][t]["loss"]), 1e-12)
        rows.append(row)
    params = []
    for t in snaps:
        a = load_state(os.path.join(out, ref, "snapshots", f"step_{t}.npz"))
        entry = {"step": t, "rel": {}, "worst": {}, "worst_name": {}}
        norm = np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in a.values()))
        for b in backends[1:]:
            o = load_state(os.path.join(out, b, "snapshots", f"step_{t}.npz"))
            sq, worst, wname = 0.0, 0.0, ""
            for kname, v in a.items():
                d = v.astype(np.float64) - o[kname].astype(np.float64)
                sq += float(np.sum(d * d))
                rel = float(np.linalg.norm(d) / max(np.linalg.norm(v), 1e-12))
                if rel > worst:
                    worst, wname = rel, kname
            entry["rel"][b], entry["worst"][b], entry["worst_name"][b] = np.sqrt(sq) / max(norm, 1e-12), worst, wname
        params.append(entry)
    same_data = all(digests[b] == digests[ref] for b in backends)
    if not same_data:
        failures.append("the frameworks did not receive the same batches (data digests differ)")
    for b in backends[1:]:
        lr_bad = [r["step"] for r in rows if r["lr_by"][b] != r["lr"]]
        if lr_bad:
            failures.append(f"{b}: learning rate differs from {ref} from step {lr_bad[0]}")
        first_loss = next((r for r in rows if r["dloss"][b] > loss_tol(r["step"])), None)
        first_param = next((p for p in params if p["rel"][b] > param_tol(p["step"])), None)
        if first_loss or first_param:
            what = []
            if first_loss:
                what.append(f"loss differs by {first_loss['dloss'][b]:.1e} at step {first_loss['step']} "
                            f"(tolerance {loss_tol(first_loss['step']):.1e})")
            if first_param:
                what.append(f"parameters differ by {first_param['rel'][b]:.1e} at step {first_param['step']} "
                            f"(tolerance {param_tol(first_param['step']):.1e}; worst tensor "
                            f"{first_param['worst_name'][b]})")
            cause = ("; cause: the recipes differ: " + "; ".join(diffs[b])) if b in diffs else \
                    "; the recipes are identical: a framework difference (run onespec conformance --numerics)"
            failures.append(f"{b} diverges from {ref}: " + ", ".join(what) + cause)
    return AlignReport(name, backends, steps, rows, params, diffs, same_data, failures)


def plot(rep: AlignReport, path: str) -> None:
    plt = R._plt()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    steps = [r["step"] for r in rep.rows]
    for i, b in enumerate(rep.backends):
        ax[0].plot(steps, [r["loss"][b] for r in rep.rows], "o-" if i == 0 else "x--", ms=4, label=b)
    tol = [loss_tol(t) for t in steps]
    for b in rep.backends[1:]:
        ax[1].semilogy(steps, [max(r["dloss"][b], 1e-12) for r in rep.rows], "o-", ms=3, label=f"{b} vs {rep.backends[0]}")
        ps = [p["step"] for p in rep.params if p["step"] > 0]
        ax[2].semilogy(ps, [max(p["rel"][b], 1e-14) for p in rep.params if p["step"] > 0], "o-", ms=3,
                       label=f"{b} vs {rep.backends[0]}")
    ax[1].semilogy(steps, tol, "k:", label="tolerance")
    ps = [p["step"] for p in rep.params if p["step"] > 0]
    ax[2].semilogy(ps, [param_tol(t) for t in ps], "k:", label="tolerance")
    ax[0].set(xlabel="step", ylabel="training loss", title="loss per framework")
    ax[1].set(xlabel="step", ylabel="|loss - reference| / loss", title="loss difference")
    ax[2].set(xlabel="step", ylabel="relative L2 distance", title="parameter distance")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.suptitle(f"onespec align {rep.model}: " + ("ALIGNED" if rep.ok else "NOT ALIGNED"),
                 color="green" if rep.ok else "red")
    fig.tight_layout()
    R._save(fig, path)
    plt.close(fig)


def environment(backend: str) -> dict:
    """Framework version, threads and device of this process (recorded in every report)."""
    import platform
    env = {"backend": backend, "python": platform.python_version(), "numpy": np.__version__,
           "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    if backend == "torch":
        import torch
        env.update(version=torch.__version__, threads=torch.get_num_threads(), device="cpu",
                   cuda=torch.cuda.is_available(), tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                   cudnn_deterministic=torch.backends.cudnn.deterministic)
    elif backend == "paddle":
        import paddle
        env.update(version=paddle.__version__, device=paddle.device.get_device())
    else:
        import mindspore as ms
        env.update(version=ms.__version__, device=ms.get_context("device_target"))
    return env


def _worker(argv) -> int:
    """One framework's side: ``python -m onespec.training.align BACKEND SPEC RECIPE OUT SNAPSHOTS``."""
    from .._proc import child_init
    from ..spec import parse_spec
    from .engine import train

    child_init()
    backend, spec_path, recipe_path, out, snaps = argv
    data_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # frameworks print to stdout; keep the result line clean
    try:
        with open(spec_path, "rb") as f:
            spec = parse_spec(f.read())
        with open(recipe_path) as f:
            recipe = load_recipe(None, None, base=json.load(f))
        train(spec, recipe, backend=backend, out=out, progress=False,
              snapshots=tuple(int(s) for s in snaps.split(",") if s))
        data_out.write(json.dumps(environment(backend)) + "\n")
        data_out.flush()
    except (OnespecError, FileNotFoundError, ValueError) as err:
        print(f"onespec: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
