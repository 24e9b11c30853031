"""``onespec align``: train the same model from the same state on the same batches with the same
per-step LR for N steps in several frameworks (one process each), and compare the steps.

Per step: the loss of each framework and its relative difference to the first framework's, the
LR, the gradient norm; at logarithmically spaced steps the relative L2 distance between the
frameworks' parameters (BN statistics included). Dropout is switched off (each framework draws
its own masks; the porting guides' ladder does the same). The recipes each framework ran are
compared field by field, so a failure names the field that differs when one does.

Tolerances are measured in every run, not guessed: a framework that trains in float64 (the
contract's ``PRECISIONS``: torch) trains the same steps once in float64 and twice in float32,
from the start and from the start moved by one float32 ulp per element (``ULP``). The float32
runs' distance from the float64 one is what float32 rounding alone does to this model and recipe;
every framework passes while its own distance from the float64 run stays within ``K`` times the
farther of the two, plus a floor (``TOL``, ``docs/training.md``, "Alignment"). The yardstick is
rounding at every operation of every step, as a framework's own arithmetic differs from another's;
no framework's verdict depends on another's being right.
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

# A framework passes while its distance from the float64 run stays within K times the float32
# run's own distance from it (pure rounding, same code) plus a floor for the loss and state
# computations themselves. K: two correct frameworks round differently (oneDNN's Winograd or GEMM
# convolutions against torch's), measured within 3x of torch float32's own rounding on the zoo
# (docs/training.md, benchmarks/verdicts.py); a real convention difference is 10-1000x above.
TOL = {"k": 10.0, "loss_floor": 1e-5, "param_floor": 1e-6, "state_floor": 1e-5}
# align's and diff's verdicts disagree (align parts, diff finds every node right): within this
# factor of align's tolerance the parting is one float32 rounding envelope away, and align is the
# inconclusive one; beyond it, diff is (one step, per-node bounds, no optimizer).
MARGINAL = 10.0
FLOAT64 = "float64"
# The second float32 sample of rounding: the same run from the start moved by one ulp per element
# in a random direction (a rounding of the start, as another framework's first operation makes).
# On a network that amplifies rounding (MobileNetV3, ShuffleNet: 10-1000x per step) one float32 run
# is one draw of a wide spread; torch's own run of mobilenet_v3_small stayed 5.4e-5 from float64
# over 8 steps where Paddle's and MindSpore's, computing every node right, reached 7.2e-4 and
# 4.6e-4 (benchmarks/verdicts.py). The farther of two draws is the yardstick.
ULP = "ulp"


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
    yardstick: dict[str, str] = field(default_factory=dict)      # the float32 and float64 runs' folders
    excess: dict[str, float] = field(default_factory=dict)       # framework -> worst distance / tolerance

    @property
    def ok(self) -> bool:
        return not self.failures

    def table(self) -> str:
        ref, bs = self.backends[0], self.backends
        head = f"{'step':>4}  {'lr':>9}  " + "  ".join(f"{'loss ' + b:>16}" for b in bs) + "  " + \
               "  ".join(f"{'dloss ' + b:>16}" for b in bs) + f"  {'tolerance':>9}  " + \
               "  ".join(f"{'gnorm ' + b:>16}" for b in bs)
        y = self.yardstick
        twin = f" or {y['float32_ulp']}/, from one ulp away, the farther" if y.get("float32_ulp") else ""
        out = [f"onespec align {self.model}: {self.steps} steps, reference {ref}; each framework against the "
               f"float64 run ({y.get('float64')}/), tolerance {TOL['k']:g} x float32's own distance from it "
               f"({y.get('float32')}/{twin}) + floor", head]
        for r in self.rows:
            out.append(f"{r['step']:>4}  {r['lr']:9.3g}  " + "  ".join(f"{r['loss'][b]:16.7f}" for b in bs)
                       + "  " + "  ".join(f"{r['d64'][b]:16.2e}" for b in bs)
                       + f"  {r['tolerance']:9.1e}  " + "  ".join(f"{r['grad_norm'][b]:16.6g}" for b in bs))
        out.append("distance to the float64 run: trainable parameters (relative L2) / worst tensor / BN statistics:")
        for p in self.params:
            out.append(f"  step {p['step']:>3}: " + "  ".join(
                f"{b} {p['rel64'][b]:.2e} / {p['worst'][b]:.2e} ({p['worst_name'][b] or '-'}) / {p['state64'][b]:.2e}"
                for b in bs) + f"   tolerance {p['tolerance']:.1e} / state {p['state_tolerance']:.1e}")
        out.append("same batches in every framework: " + ("yes" if self.digests_equal else "NO"))
        out.append("ALIGNED" if self.ok else "NOT ALIGNED:\n  " + "\n  ".join(self.failures))
        return "\n".join(out)

    def to_dict(self) -> dict:
        return {"model": self.model, "backends": self.backends, "steps": self.steps, "ok": self.ok,
                "failures": self.failures, "recipe_diffs": self.recipe_diffs, "digests_equal": self.digests_equal,
                "tolerances": TOL, "yardstick": self.yardstick, "excess": self.excess, "rows": self.rows,
                "params": self.params, "environment": self.env, "diagnosis": self.diagnosis}


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


@dataclass
class Run:
    """One training run of a plan: ``label`` is its folder in the plan's ``out``."""
    label: str
    backend: str
    recipe: Recipe
    spec_path: str
    precision: str = "float32"


@dataclass
class Plan:
    """What ``align`` trains: the runs (every framework, the float64 yardstick), where, and how
    the report reads them."""
    name: str
    backends: list[str]
    out: str
    steps: int
    snaps: tuple[int, ...]
    recipes: dict[str, Recipe]
    spec_path: str
    yard: tuple[str, ...]  # (float32, float64, float32 from the start one ulp away)
    runs: list[Run]


def align(model, recipe: Recipe | str | None = None, *, backends=FRAMEWORKS, steps: int = 20, overrides=None,
          per_backend: dict[str, dict] | None = None, out: str | None = None, diagnose: bool = True) -> AlignReport:
    """Align ``model`` over ``steps`` training steps in ``backends`` (the first is the reference).
    ``per_backend``: recipe overrides for one framework only (to find what a difference does).
    ``diagnose``: when a framework parts with identical recipes, run ``onespec diff`` (train mode,
    backward, from the run's start state) on it."""
    plan = prepare(model, recipe, backends=backends, steps=steps, overrides=overrides, per_backend=per_backend, out=out)
    env, errors = execute([plan])
    if errors:
        raise AlignError(next(iter(errors.values())))
    return finish(plan, env, diagnose=diagnose)


def prepare(model, recipe: Recipe | str | None = None, *, backends=FRAMEWORKS, steps: int = 20, overrides=None,
            per_backend: dict[str, dict] | None = None, out: str | None = None,
            spec_for: dict[str, ModelSpec] | None = None) -> Plan:
    """The plan of an alignment, every input checked and the start state written. ``spec_for``:
    another model for one framework (``benchmarks/verdicts.py`` injects a difference so)."""
    from ..conformance.diff.reference import reference_framework
    from ..weights import save_state
    from ..models import for_recipe
    from .engine import load_start, open_data

    backends = [check_backend(b, FRAMEWORKS) for b in backends]
    if len(backends) < 2 or len(set(backends)) != len(backends):
        raise AlignError(f"align needs two or more different frameworks, got {backends}")
    per_backend = per_backend or {}
    for b in (*per_backend, *(spec_for or {})):
        if b not in backends:
            raise AlignError(f"overrides for {b}, which is not among --backends {','.join(backends)}")
    base = as_recipe(recipe, overrides)
    base = _abs_paths(base.model_copy(update={"max_steps": steps, "data": base.data.model_copy(update={"workers": 0})}))
    recipes = {b: load_recipe(None, per_backend.get(b, {}), base=json.loads(base.model_dump_json())) for b in backends}
    train_src, _ = open_data(base)  # every input checked before any framework starts
    spec = without_dropout(for_recipe(model, base, len(train_src.classes)))
    out = os.path.abspath(out or f"align-{spec.name}")
    os.makedirs(out, exist_ok=True)
    spec_path = _write_spec(spec, os.path.join(out, "spec.json"))
    start, _ = load_start(spec, recipes[backends[0]], backends[0])
    save_state(start, os.path.join(out, "start.npz"))
    runs = [Run(b, b, recipes[b], spec_path) for b in backends]
    for b, other in (spec_for or {}).items():
        runs[backends.index(b)] = Run(b, b, _start_for(other, start, out, b, recipes[b]),
                                      _write_spec(without_dropout(other), os.path.join(out, f"spec-{b}.json")))
    fw = reference_framework()  # its backend trains in float64 too
    r32 = fw if fw in backends else f"{fw}-float32"
    runs.append(Run(FLOAT64, fw, recipes[backends[0]], spec_path, FLOAT64))
    if r32 not in backends:
        runs.append(Run(r32, fw, recipes[backends[0]], spec_path))
    twin = f"{fw}-{ULP}"
    runs.append(Run(twin, fw, _start_for(spec, ulp_away(start, 0), out, twin, recipes[backends[0]]), spec_path))
    return Plan(spec.name, backends, out, steps, snapshot_steps(steps), recipes, spec_path, (r32, FLOAT64, twin), runs)


def ulp_away(state: dict, seed: int) -> dict:
    """``state`` with every float32 element moved by one ulp, up or down at random (seeded)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in state.items():
        v = np.asarray(v)
        if v.dtype.kind != "f":
            out[k] = v
            continue
        v32 = v.astype(np.float32)
        out[k] = np.nextafter(v32, np.where(rng.random(v32.shape) < 0.5, -np.inf, np.inf).astype(np.float32))
    return out


def _write_spec(spec: ModelSpec, path: str) -> str:
    with open(path, "w") as f:
        f.write(spec.model_dump_json())
    return path


def _start_for(spec: ModelSpec, start: dict, out: str, backend: str, recipe: Recipe) -> Recipe:
    """``recipe`` starting from ``start``'s tensors that ``spec`` has (a model without a bias
    starts from the others)."""
    from ..weights import layout, save_state

    lay = layout(spec)
    path = os.path.join(out, f"start-{backend}.npz")
    save_state({k: v for k, v in start.items() if k in lay}, path)
    return recipe.model_copy(update={"weights": path, "weights_format": "canonical"})


def execute(plans: list[Plan]) -> tuple[dict[str, dict], dict[str, str]]:
    """Train every run of ``plans``, one child process per framework and precision: (each
    framework's numerics environment, {run folder: error} for the runs that failed)."""
    from .._proc import run_child

    groups: dict[tuple[str, str], list] = {}
    for plan in plans:
        for r in plan.runs:
            run_dir = os.path.join(plan.out, r.label)
            if os.path.exists(run_dir):
                import shutil
                shutil.rmtree(run_dir)
            rp = os.path.join(plan.out, f"recipe-{r.label}.json")
            with open(rp, "w") as f:
                f.write(r.recipe.model_dump_json())
            groups.setdefault((r.backend, r.precision), []).append([r.spec_path, rp, run_dir, list(plan.snaps)])
    env, errors = {}, {}
    for (backend, precision), jobs in groups.items():
        jobs_path = os.path.join(plans[0].out, f"jobs-{backend}-{precision}.json")
        with open(jobs_path, "w") as f:
            json.dump(jobs, f)
        code, so, se = run_child(["-m", "onespec.training.align", backend, precision, jobs_path])
        if code != 0:
            text = se.decode(errors="replace")
            lines = [ln for ln in text.splitlines() if ln.startswith("onespec: error: ")]
            raise AlignError(f"{backend}: " + (lines[-1][16:] if lines else text[-1500:]))
        answer = json.loads(so.decode().strip().splitlines()[-1])
        errors.update({k: f"{backend}: {v}" for k, v in answer["errors"].items()})
        if precision == "float32":
            env[backend] = answer["environment"]
    return env, errors


def finish(plan: Plan, env: dict, *, diagnose: bool = True, figures: bool = True) -> AlignReport:
    """The report of a plan whose runs are done: compared, diagnosed, written (align.json,
    align.txt and, with ``figures``, align.png) in its folder."""
    out = plan.out
    rep = compare(plan.name, plan.backends, out, plan.recipes, plan.steps, plan.snaps, plan.yard)
    rep.env = {b: env.get(b, {}) for b in plan.backends}
    if diagnose and rep.framework_failures:
        _diagnose(rep, out, plan.spec_path)
    R.write_json(rep.to_dict(), os.path.join(out, "align.json"))
    with open(os.path.join(out, "align.txt"), "w") as f:
        f.write(rep.table() + "\n")
    if figures:
        plot(rep, os.path.join(out, "align.png"))
    return rep


def _diagnose(rep: AlignReport, out: str, spec_path: str) -> None:
    """``onespec diff`` (train mode, backward, from the run's start) on every framework that parts
    with its recipe identical; where diff finds every node right, the report says which of the
    two verdicts is the inconclusive one (:func:`disagreement`)."""
    from ..conformance.diff import diagnose

    for b in rep.framework_failures:
        rep.diagnosis[b] = line = diagnose(spec_path, b, os.path.join(out, f"diff-{b}"),
                                           weights=os.path.join(out, "start.npz"), mode="train", backward=True)
        rep.failures.append(f"diff: {line}")
        if "within tolerance" in line:
            rep.failures.append(disagreement(b, rep.excess[b]))


def disagreement(backend: str, excess: float) -> str:
    """The line for align parting while diff finds every node of ``backend`` right. Within
    ``MARGINAL`` tolerances align is inconclusive: float32 rounding amplified by the training
    (Adam's division by the root of a near-zero second moment) reaches a few times its envelope on
    some models, while every node computes the spec. Beyond, diff is: it checks one step from the
    start, node by node, with bounds of 1e-4 or more, and cannot see a difference below that which
    accumulates over steps, nor one outside the network (the data, the optimizer, the schedule)."""
    if excess <= MARGINAL:
        return (f"align and diff disagree on {backend}: align is inconclusive (its distance is {excess:.1f}x its "
                f"tolerance, within {MARGINAL:g}x of what float32 rounding explains, and diff finds every node "
                f"right forward and backward); treat {backend} as aligned unless a longer run parts further")
    return (f"align and diff disagree on {backend}: diff is inconclusive (align's distance is {excess:.0f}x its "
            f"tolerance, beyond rounding; diff checks one step node by node to 1e-4, and misses a smaller per-step "
            f"difference that accumulates or one outside the network: data, optimizer, schedule); trust align")


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
        unlike = sorted(k for k, v in sa.items() if k not in sb or sb[k].shape != v.shape)
        for k, v in sa.items():
            v64 = v.astype(np.float64)
            w = sb.get(k)
            # a tensor the run lacks or shapes otherwise: all of it differs
            d = v64 - (w.astype(np.float64) if w is not None and w.shape == v.shape else 0.0)
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
                          "worst": worst, "worst_name": wname, "unlike": unlike})
    return dloss, snaps_out


def _recipe_diffs(backends: list[str], recipes: dict) -> dict[str, list[str]]:
    ref = backends[0]
    flat_ref = _flat(json.loads(recipes[ref].model_dump_json()))
    diffs = {}
    for b in backends[1:]:
        fb = _flat(json.loads(recipes[b].model_dump_json()))
        d = [f"{key}: {fb.get(key)!r} in {b}, {flat_ref.get(key)!r} in {ref}" for key in sorted(set(fb) | set(flat_ref))
             if fb.get(key) != flat_ref.get(key)]
        if d:
            diffs[b] = d
    return diffs


def _bounds(self_loss: dict, self_snaps: list[dict], steps: int) -> tuple[dict, dict, dict]:
    """Loss, parameter and state tolerances per step: K times float32's own distance from float64,
    plus the floors. The parameters' and statistics' bound is the running maximum of that distance
    (rounding accumulates in them and does not un-happen). The loss's is its maximum over the whole
    run: rounding can walk parameters the loss does not see at first (Adam on a gradient that is
    zero in exact arithmetic) until a step where it does (a sign flipped through a one-channel L2
    norm), and that step comes earlier in one framework than in another. Three correct MindSpore
    runs of ``benchmarks/verdicts.py`` parted a step before the reference's own loss did."""
    k = TOL["k"]
    loss_top = max(self_loss[t] for t in range(1, steps + 1))
    tol_loss = {t: k * loss_top + TOL["loss_floor"] for t in range(1, steps + 1)}
    p_env, s_env = _envelope([x["rel"] for x in self_snaps]), _envelope([x["state"] for x in self_snaps])
    tol_param = {x["step"]: k * e + TOL["param_floor"] for x, e in zip(self_snaps, p_env)}
    tol_state = {x["step"]: k * e + TOL["state_floor"] for x, e in zip(self_snaps, s_env)}
    return tol_loss, tol_param, tol_state


def _verdict(b: str, rows: list[dict], params: list[dict]) -> tuple[list[str], float]:
    """What of ``b`` leaves the float64 run by more than its tolerance (first step each), and by
    how many tolerances at worst."""
    what, excess = [], 0.0
    # a tensor the float64 run has and this one lacks (or shapes otherwise) is no rounding: the
    # network differs, whatever it does to the distances (ten biases of a classifier hide in the
    # relative distance of a whole ShuffleNet)
    first = next((p for p in params if p["unlike"][b]), None)
    if first:
        names = first["unlike"][b]
        what.append(f"its state lacks or shapes otherwise {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} "
                    f"at step {first['step']}")
    first = next((r for r in rows if r["d64"][b] > r["tolerance"]), None)
    if first:
        what.append(f"loss differs by {first['d64'][b]:.1e} at step {first['step']} (tolerance {first['tolerance']:.1e})")
    first = next((p for p in params if p["rel64"][b] > p["tolerance"]), None)
    if first:
        what.append(f"parameters differ by {first['rel64'][b]:.1e} at step {first['step']} (tolerance "
                    f"{first['tolerance']:.1e}; worst tensor {first['worst_name'][b]})")
    first = next((p for p in params if p["state64"][b] > p["state_tolerance"]), None)
    if first:
        what.append(f"BN statistics differ by {first['state64'][b]:.1e} at step {first['step']} "
                    f"(tolerance {first['state_tolerance']:.1e})")
    for r in rows:
        excess = max(excess, r["d64"][b] / r["tolerance"])
    for p in params:
        excess = max(excess, p["rel64"][b] / p["tolerance"], p["state64"][b] / p["state_tolerance"])
    return what, excess


def compare(name: str, backends: list[str], out: str, recipes: dict, steps: int, snaps,
            yard: tuple[str, ...]) -> AlignReport:
    """The report of the runs in ``out``: each framework against the float64 run ``yard[1]``
    (the verdict) and against the reference framework (shown); ``yard[0]`` and ``yard[2:]``,
    float32 in the float64 run's framework (from the start, from one ulp away), give the
    tolerances: the farther of them from the float64 run at each step."""
    from ..spec import parse_spec
    from ..weights import layout

    ref, (r32, r64), twins = backends[0], yard[:2], yard[2:]
    with open(os.path.join(out, "spec.json"), "rb") as f:
        lay = layout(parse_spec(f.read()))
    metrics = {b: [json.loads(l) for l in open(os.path.join(out, b, "metrics.jsonl"))] for b in (*backends, r64)}
    per_step = {b: {r["step"]: r for r in metrics[b] if r["kind"] == "step"} for b in backends}
    digests = {b: [r["data_digest"] for r in metrics[b] if r["kind"] == "epoch"] for b in metrics}
    diffs = _recipe_diffs(backends, recipes)
    self_loss, self_snaps = _distances(out, r64, r32, lay, snaps)
    for twin in twins:
        t_loss, t_snaps = _distances(out, r64, twin, lay, snaps)
        self_loss = {t: max(v, t_loss[t]) for t, v in self_loss.items()}
        self_snaps = [{**a, "rel": max(a["rel"], b["rel"]), "state": max(a["state"], b["state"])}
                      for a, b in zip(self_snaps, t_snaps)]
    tol_loss, tol_param, tol_state = _bounds(self_loss, self_snaps, steps)
    to64 = {b: _distances(out, r64, b, lay, snaps) for b in backends}
    toref = {b: _distances(out, ref, b, lay, snaps) for b in backends[1:]}
    rows = []
    for t in range(1, steps + 1):
        row = {"step": t, "lr": per_step[ref][t]["lr"], "loss": {}, "dloss": {}, "d64": {}, "grad_norm": {},
               "lr_by": {}, "self_dloss": self_loss[t], "tolerance": tol_loss[t]}
        for b in backends:
            r = per_step[b][t]
            row["loss"][b], row["grad_norm"][b], row["lr_by"][b] = r["loss"], r["grad_norm"], r["lr"]
            row["d64"][b] = to64[b][0][t]
            if b != ref:
                row["dloss"][b] = toref[b][0][t]
        rows.append(row)
    params = []
    for i, x in enumerate(self_snaps):
        t = x["step"]
        params.append({"step": t, "self": x["rel"], "self_state": x["state"], "tolerance": tol_param[t],
                       "state_tolerance": tol_state[t],
                       "rel": {b: toref[b][1][i]["rel"] for b in toref},
                       "state_rel": {b: toref[b][1][i]["state"] for b in toref},
                       "rel64": {b: to64[b][1][i]["rel"] for b in to64},
                       "state64": {b: to64[b][1][i]["state"] for b in to64},
                       "worst": {b: to64[b][1][i]["worst"] for b in to64},
                       "worst_name": {b: to64[b][1][i]["worst_name"] for b in to64},
                       "unlike": {b: to64[b][1][i]["unlike"] for b in to64}})
    same_data = all(digests[b] == digests[ref] for b in digests)
    rep = AlignReport(name, backends, steps, rows, params, diffs, same_data, yardstick={"float32": r32, "float64": r64,
                                                                                 **({"float32_ulp": twins[0]} if twins else {})})
    _judge(rep)
    return rep


def _judge(rep: AlignReport) -> None:
    ref = rep.backends[0]
    if not rep.digests_equal:
        rep.failures.append("the frameworks did not receive the same batches (data digests differ)")
    for b in rep.backends:
        lr_bad = [r["step"] for r in rep.rows if r["lr_by"][b] != r["lr"]]
        if lr_bad:
            rep.failures.append(f"{b}: learning rate differs from {ref} from step {lr_bad[0]}")
        what, rep.excess[b] = _verdict(b, rep.rows, rep.params)
        if what:
            cause = ("; cause: the recipes differ: " + "; ".join(rep.recipe_diffs[b])) if b in rep.recipe_diffs else \
                    "; the recipes are identical: a framework difference"
            rep.failures.append(f"{b} diverges from the float64 run: " + ", ".join(what) + cause)
            if b not in rep.recipe_diffs:
                rep.framework_failures.append(b)
        elif b in rep.recipe_diffs:  # not the same training, however close its numbers stay
            rep.failures.append(f"{b}: the recipes differ ({'; '.join(rep.recipe_diffs[b])}), although {b} stays "
                                f"within tolerance over {rep.steps} steps")


def plot(rep: AlignReport, path: str) -> None:
    plt = R.pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    steps = [r["step"] for r in rep.rows]
    ref = rep.backends[0]
    for i, b in enumerate(rep.backends):
        ax[0].plot(steps, [r["loss"][b] for r in rep.rows], "o-" if i == 0 else "x--", ms=4, label=b)
    ps = [p for p in rep.params if p["step"] > 0]
    for b in rep.backends:
        ax[1].semilogy(steps, [max(r["d64"][b], 1e-9) for r in rep.rows], "o-", ms=3, label=b)
        ax[2].semilogy([p["step"] for p in ps], [max(p["rel64"][b], 1e-10) for p in ps], "o-", ms=3, label=b)
    draws = ", the farther of 2 draws" if rep.yardstick.get("float32_ulp") else ""
    rounding = f"{rep.yardstick.get('float32', ref)} float32{draws} (rounding alone)"
    ax[1].semilogy(steps, [max(r["self_dloss"], 1e-9) for r in rep.rows], color="0.6", lw=1, label=rounding)
    ax[1].semilogy(steps, [r["tolerance"] for r in rep.rows], "k:", label="tolerance")
    ax[2].semilogy([p["step"] for p in ps], [max(p["self"], 1e-10) for p in ps], color="0.6", lw=1, label=rounding)
    ax[2].semilogy([p["step"] for p in ps], [p["tolerance"] for p in ps], "k:", label="tolerance")
    ax[0].set(xlabel="step", ylabel="training loss", title="loss per framework")
    ax[1].set(xlabel="step", ylabel="|loss - float64 run| / loss (0 drawn at 1e-9)", title="loss difference")
    ax[2].set(xlabel="step", ylabel="relative L2 distance", title="trainable parameters: distance to float64")
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
    """One framework's side: ``python -m onespec.training.align BACKEND PRECISION JOBS``, JOBS a
    JSON list of [spec file, recipe file, run folder, snapshot steps]. Prints one JSON line: the
    numerics environment and {run folder: error} for the jobs that failed."""
    from .._proc import child_init, data_channel
    from ..spec import parse_spec
    from .trainer import train

    child_init()
    backend, precision, jobs_path = argv
    data_out = data_channel()
    errors = {}
    try:
        with open(jobs_path) as f:
            jobs = json.load(f)
        for spec_path, recipe_path, out, snaps in jobs:
            with open(spec_path, "rb") as f:
                spec = parse_spec(f.read())
            with open(recipe_path) as f:
                recipe = load_recipe(None, None, base=json.load(f))
            try:
                train(spec, recipe, backend=backend, out=out, progress=False, snapshots=tuple(snaps), precision=precision)
            except (OnespecError, ValueError, RuntimeError) as err:  # one run's failure is that run's verdict
                errors[out] = str(err).splitlines()[0][:500] if str(err) else type(err).__name__
        data_out.write(json.dumps({"environment": environment(backend), "errors": errors}) + "\n")
        data_out.flush()
    except (OnespecError, FileNotFoundError, ValueError) as err:
        print(f"onespec: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
