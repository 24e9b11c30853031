"""``onespec align``: train the same model from the same state on the same batches with the same
per-step LR for N steps in several frameworks (one process each), and compare the steps.

Per step: the loss of each framework and its relative difference to the first framework's, the
LR, the gradient norm; at logarithmically spaced steps the relative L2 distance between the
frameworks' parameters (BN statistics included). Dropout is switched off (each framework draws
its own masks; the porting guides' ladder does the same). The recipes each framework ran are
compared field by field, so a failure names the field that differs when one does.

Tolerances are measured in every run, not guessed: the reference framework trains a second time
from its initial state perturbed by 1e-7 relative (one float32 rounding); how far that run drifts
is how much this model and recipe amplify rounding (``TOL``, ``docs/training.md``, "Alignment").
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
from .recipe import Recipe, as_recipe, load_recipe

# A framework passes when it stays within K times the reference framework's own sensitivity to
# one float32 rounding (a second reference run from the initial state perturbed by 1e-7 relative),
# plus a floor for the loss and state computations themselves. Measured (docs/training.md,
# benchmarks/align_growth.py): with Adam that sensitivity grows from ~1e-7 to 1e-4 (SqueezeNet),
# 4e-3 (MobileNetV3-Small), 3.5e-2 (ShuffleNetV2 0.5x) in parameter distance over 20 steps, so no
# fixed bound fits every model; a real convention difference is 10-1000x above the envelope.
TOL = {"k": 10.0, "loss_floor": 1e-5, "param_floor": 1e-6, "state_floor": 1e-5, "perturbation": 1e-7}
PERTURBED = "reference-perturbed"


class AlignError(OnespecError, ValueError):
    pass


def _envelope(values: list[float]) -> list[float]:
    out, top = [], 0.0
    for v in values:
        top = max(top, v)
        out.append(top)
    return out


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
    framework_failures: list[str] = field(default_factory=list)  # parted with a recipe identical to the reference's
    diagnosis: dict[str, str] = field(default_factory=dict)      # framework -> onespec diff's verdict

    @property
    def ok(self) -> bool:
        return not self.failures

    def table(self) -> str:
        ref = self.backends[0]
        head = f"{'step':>4}  {'lr':>9}  " + "  ".join(f"{'loss ' + b:>16}" for b in self.backends) + "  " + \
               "  ".join(f"{'dloss ' + b:>16}" for b in self.backends[1:]) + f"  {'tolerance':>9}  " + \
               "  ".join(f"{'gnorm ' + b:>16}" for b in self.backends)
        out = [f"onespec align {self.model}: {self.steps} steps, reference {ref}", head]
        for r in self.rows:
            out.append(f"{r['step']:>4}  {r['lr']:9.3g}  " + "  ".join(f"{r['loss'][b]:16.7f}" for b in self.backends)
                       + "  " + "  ".join(f"{r['dloss'][b]:16.2e}" for b in self.backends[1:])
                       + f"  {r['tolerance']:9.1e}  " + "  ".join(f"{r['grad_norm'][b]:16.6g}" for b in self.backends))
        out.append(f"distance to {ref}: trainable parameters (relative L2) / worst tensor / BN statistics; "
                   f"tolerance = {TOL['k']:g} x {ref}'s own distance from a 1e-7-perturbed start + floor:")
        for p in self.params:
            out.append(f"  step {p['step']:>3}: " + "  ".join(
                f"{b} {p['rel'][b]:.2e} / {p['worst'][b]:.2e} ({p['worst_name'][b] or '-'}) / {p['state_rel'][b]:.2e}"
                for b in self.backends[1:]) + f"   tolerance {p['tolerance']:.1e} / state {p['state_tolerance']:.1e}")
        out.append("same batches in every framework: " + ("yes" if self.digests_equal else "NO"))
        out.append("ALIGNED" if self.ok else "NOT ALIGNED:\n  " + "\n  ".join(self.failures))
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {"model": self.model, "backends": self.backends, "steps": self.steps, "ok": self.ok,
                "failures": self.failures, "recipe_diffs": self.recipe_diffs, "digests_equal": self.digests_equal,
                "tolerances": TOL, "rows": self.rows, "params": self.params, "environment": self.env,
                "diagnosis": self.diagnosis}


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
          per_backend: dict[str, dict] | None = None, out: str | None = None, diagnose: bool = True) -> AlignReport:
    """Align ``model`` over ``steps`` training steps in ``backends`` (the first is the reference).
    ``per_backend``: recipe overrides for one framework only (to find what a difference does).
    ``diagnose``: when a framework parts with identical recipes, run ``onespec diff`` (train mode,
    backward, from the run's start state) on it, and on the reference if it is clean."""
    from .._proc import run_child
    from ..models import for_recipe
    from .engine import open_data

    backends = [check_backend(b, FRAMEWORKS) for b in backends]
    if len(backends) < 2 or len(set(backends)) != len(backends):
        raise AlignError(f"align needs two or more different frameworks, got {backends}")
    per_backend = per_backend or {}
    for b in per_backend:
        if b not in backends:
            raise AlignError(f"overrides for {b}, which is not among --backends {','.join(backends)}")
    base = as_recipe(recipe, overrides)
    base = _abs_paths(base.model_copy(update={"max_steps": steps, "data": base.data.model_copy(update={"workers": 0})}))
    recipes = {b: load_recipe(None, per_backend.get(b, {}), base=json.loads(base.model_dump_json())) for b in backends}
    train_src, _ = open_data(base)  # every input checked before any framework starts
    spec = for_recipe(model, base, len(train_src.classes))
    spec = without_dropout(spec)
    out = out or f"align-{spec.name}"
    os.makedirs(out, exist_ok=True)
    snaps = snapshot_steps(steps)
    spec_path = os.path.join(out, "spec.json")
    with open(spec_path, "w") as f:
        f.write(spec.model_dump_json())
    # the yardstick: the reference framework once more, from a start perturbed by one float32 rounding
    from ..weights import save_state
    from .engine import load_start
    start, _ = load_start(spec, recipes[backends[0]], backends[0])
    save_state(start, os.path.join(out, "start.npz"))
    rng = np.random.default_rng(12345)
    pert_path = os.path.join(out, "perturbed-start.npz")
    save_state({k: (v * (1 + TOL["perturbation"] * rng.standard_normal(v.shape))).astype(np.float32)
                for k, v in start.items()}, pert_path)
    runs = [(b, b, recipes[b]) for b in backends]
    runs.append((PERTURBED, backends[0], recipes[backends[0]].model_copy(
        update={"weights": os.path.abspath(pert_path), "weights_format": "canonical"})))
    env = {}
    for label, b, rec in runs:
        run_dir = os.path.join(out, label)
        if os.path.exists(os.path.join(run_dir, "run.json")):
            import shutil
            shutil.rmtree(run_dir)
        rp = os.path.join(out, f"recipe-{label}.json")
        with open(rp, "w") as f:
            f.write(rec.model_dump_json())
        t0 = time.perf_counter()
        code, so, se = run_child(["-m", "onespec.training.align", b, os.path.abspath(spec_path), os.path.abspath(rp),
                                  os.path.abspath(run_dir), ",".join(map(str, snaps))])
        if code != 0:
            text = se.decode(errors="replace")
            lines = [ln for ln in text.splitlines() if ln.startswith("onespec: error: ")]
            raise AlignError(f"{b}: " + (lines[-1][16:] if lines else text[-1500:]))
        if label == b:
            env[b] = {**json.loads(so.decode().strip().splitlines()[-1]), "seconds": round(time.perf_counter() - t0, 1)}
    rep = compare(spec.name, backends, out, recipes, steps, snaps)
    rep.env = env
    if diagnose and rep.framework_failures:
        _diagnose(rep, out, spec_path)
    R.write_json(rep.to_dict(), os.path.join(out, "align.json"))
    with open(os.path.join(out, "align.txt"), "w") as f:
        f.write(rep.table() + "\n")
    plot(rep, os.path.join(out, "align.png"))
    return rep


def _diagnose(rep: AlignReport, out: str, spec_path: str) -> None:
    from ..conformance.diff import diagnose

    ref = rep.backends[0]
    for b in rep.framework_failures:
        for who in (b, ref):
            if who in rep.diagnosis:
                continue
            rep.diagnosis[who] = line = diagnose(spec_path, who, os.path.join(out, f"diff-{who}"),
                                                 weights=os.path.join(out, "start.npz"), mode="train", backward=True)
            if "first divergence" in line:
                break
    rep.failures += [f"diff: {line}" for line in rep.diagnosis.values()]


def _distances(out: str, a: str, b: str, lay, snaps) -> tuple[dict, list[dict]]:
    """(relative loss difference per step, [per snapshot: trainable distance, worst tensor, state
    distance]) of run ``b`` against run ``a``."""
    la = {r["step"]: r["loss"] for r in map(json.loads, open(os.path.join(out, a, "metrics.jsonl"))) if r["kind"] == "step"}
    lb = {r["step"]: r["loss"] for r in map(json.loads, open(os.path.join(out, b, "metrics.jsonl"))) if r["kind"] == "step"}
    dloss = {t: abs(lb[t] - la[t]) / max(abs(la[t]), 1e-12) for t in la}
    snaps_out = []
    for t in snaps:
        sa = load_state(os.path.join(out, a, "snapshots", f"step_{t}.npz"))
        sb = load_state(os.path.join(out, b, "snapshots", f"step_{t}.npz"))
        sums = {True: [0.0, 0.0], False: [0.0, 0.0]}  # trainable / state: [diff^2, ref^2]
        worst, wname = 0.0, ""
        for k, v in sa.items():
            v64 = v.astype(np.float64)
            d = v64 - sb[k].astype(np.float64)
            acc = sums[lay[k].trainable]
            acc[0] += float(np.sum(d * d))
            acc[1] += float(np.sum(v64 * v64))
            if lay[k].trainable:
                # a floor on the denominator: a tensor near zero (a bias) is not "100% off"
                rel = float(np.linalg.norm(d) / max(np.linalg.norm(v64), 1e-3 * np.sqrt(v.size)))
                if rel > worst:
                    worst, wname = rel, k
        snaps_out.append({"step": t, "rel": float(np.sqrt(sums[True][0] / max(sums[True][1], 1e-30))),
                          "state": float(np.sqrt(sums[False][0] / max(sums[False][1], 1e-30))) if sums[False][1] else 0.0,
                          "worst": worst, "worst_name": wname})
    return dloss, snaps_out


def compare(name: str, backends: list[str], out: str, recipes: dict, steps: int, snaps) -> AlignReport:
    from ..spec import parse_spec
    from ..weights import layout

    ref = backends[0]
    with open(os.path.join(out, "spec.json"), "rb") as f:
        lay = layout(parse_spec(f.read()))
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
    # the yardstick: the reference against itself from a perturbed start
    self_loss, self_snaps = _distances(out, ref, PERTURBED, lay, snaps)
    loss_env = _envelope([self_loss[t] for t in range(1, steps + 1)])
    k = TOL["k"]
    tol_loss = {t: k * loss_env[t - 1] + TOL["loss_floor"] for t in range(1, steps + 1)}
    p_env, s_env = _envelope([x["rel"] for x in self_snaps]), _envelope([x["state"] for x in self_snaps])
    tol_param = {x["step"]: k * e + TOL["param_floor"] for x, e in zip(self_snaps, p_env)}
    tol_state = {x["step"]: k * e + TOL["state_floor"] for x, e in zip(self_snaps, s_env)}
    dist = {b: _distances(out, ref, b, lay, snaps) for b in backends[1:]}
    rows, failures, framework_failures = [], [], []
    for t in range(1, steps + 1):
        row = {"step": t, "lr": per_step[ref][t]["lr"], "loss": {}, "dloss": {}, "grad_norm": {}, "lr_by": {},
               "self_dloss": self_loss[t], "tolerance": tol_loss[t]}
        for b in backends:
            r = per_step[b][t]
            row["loss"][b], row["grad_norm"][b], row["lr_by"][b] = r["loss"], r["grad_norm"], r["lr"]
            if b != ref:
                row["dloss"][b] = dist[b][0][t]
        rows.append(row)
    params = []
    for i, x in enumerate(self_snaps):
        t = x["step"]
        params.append({"step": t, "self": x["rel"], "self_state": x["state"], "tolerance": tol_param[t],
                       "state_tolerance": tol_state[t],
                       "rel": {b: dist[b][1][i]["rel"] for b in dist}, "state_rel": {b: dist[b][1][i]["state"] for b in dist},
                       "worst": {b: dist[b][1][i]["worst"] for b in dist},
                       "worst_name": {b: dist[b][1][i]["worst_name"] for b in dist}})
    same_data = all(digests[b] == digests[ref] for b in backends)
    if not same_data:
        failures.append("the frameworks did not receive the same batches (data digests differ)")
    for b in backends[1:]:
        lr_bad = [r["step"] for r in rows if r["lr_by"][b] != r["lr"]]
        if lr_bad:
            failures.append(f"{b}: learning rate differs from {ref} from step {lr_bad[0]}")
        what = []
        first = next((r for r in rows if r["dloss"][b] > r["tolerance"]), None)
        if first:
            what.append(f"loss differs by {first['dloss'][b]:.1e} at step {first['step']} (tolerance {first['tolerance']:.1e})")
        first = next((p for p in params if p["rel"][b] > p["tolerance"]), None)
        if first:
            what.append(f"parameters differ by {first['rel'][b]:.1e} at step {first['step']} (tolerance "
                        f"{first['tolerance']:.1e}; worst tensor {first['worst_name'][b]})")
        first = next((p for p in params if p["state_rel"][b] > p["state_tolerance"]), None)
        if first:
            what.append(f"BN statistics differ by {first['state_rel'][b]:.1e} at step {first['step']} "
                        f"(tolerance {first['state_tolerance']:.1e})")
        if what:
            cause = ("; cause: the recipes differ: " + "; ".join(diffs[b])) if b in diffs else \
                    "; the recipes are identical: a framework difference"
            failures.append(f"{b} diverges from {ref}: " + ", ".join(what) + cause)
            if b not in diffs:
                framework_failures.append(b)
    return AlignReport(name, backends, steps, rows, params, diffs, same_data, failures,
                       framework_failures=framework_failures)


def plot(rep: AlignReport, path: str) -> None:
    plt = R.pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    steps = [r["step"] for r in rep.rows]
    ref = rep.backends[0]
    for i, b in enumerate(rep.backends):
        ax[0].plot(steps, [r["loss"][b] for r in rep.rows], "o-" if i == 0 else "x--", ms=4, label=b)
    ps = [p for p in rep.params if p["step"] > 0]
    for b in rep.backends[1:]:
        ax[1].semilogy(steps, [max(r["dloss"][b], 1e-9) for r in rep.rows], "o-", ms=3, label=f"{b} vs {ref}")
        ax[2].semilogy([p["step"] for p in ps], [max(p["rel"][b], 1e-10) for p in ps], "o-", ms=3, label=f"{b} vs {ref}")
    ax[1].semilogy(steps, [max(r["self_dloss"], 1e-9) for r in rep.rows], color="0.6", lw=1,
                   label=f"{ref} vs {ref} perturbed 1e-7")
    ax[1].semilogy(steps, [r["tolerance"] for r in rep.rows], "k:", label="tolerance")
    ax[2].semilogy([p["step"] for p in ps], [max(p["self"], 1e-10) for p in ps], color="0.6", lw=1,
                   label=f"{ref} vs {ref} perturbed 1e-7")
    ax[2].semilogy([p["step"] for p in ps], [p["tolerance"] for p in ps], "k:", label="tolerance")
    ax[0].set(xlabel="step", ylabel="training loss", title="loss per framework")
    ax[1].set(xlabel="step", ylabel="|loss - reference| / loss (0 drawn at 1e-9)", title="loss difference")
    ax[2].set(xlabel="step", ylabel="relative L2 distance", title="trainable parameter distance")
    from matplotlib.ticker import MaxNLocator
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    bad = [b for b in rep.backends[1:] if any(f.startswith(b + " ") for f in rep.failures)]
    fig.suptitle(f"onespec align {rep.model}: " + ("ALIGNED" if rep.ok else "NOT ALIGNED" + (": " + ", ".join(bad) if bad else "")),
                 color="green" if rep.ok else "red")
    fig.tight_layout()
    R.save_png(fig, path)
    plt.close(fig)


def environment(backend: str) -> dict:
    """This process's numerics environment (``onespec.environment.describe``) for ``backend``."""
    from ..environment import describe

    env = describe([backend])
    return {"backend": backend, **{k: v for k, v in env.items() if k != backend}, **env[backend]}


def _worker(argv) -> int:
    """One framework's side: ``python -m onespec.training.align BACKEND SPEC RECIPE OUT SNAPSHOTS``."""
    from .._proc import child_init
    from ..spec import parse_spec
    from .trainer import train

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
