"""How often ``onespec align`` and ``onespec diff`` are wrong, either way.

Corpus: random specs from the property strategy (``specs()``, each behind a convolution that maps
the digits' 3xSxS images to the spec's input, its head set to 10 classes) and zoo models at small
inputs. For every model:
- clean: align over N steps in torch, Paddle and MindSpore, and diff (eval forward; train mode
  with backward) in each framework: a NOT ALIGNED or a divergence is a false alarm;
- one injected difference in one framework (Paddle or MindSpore, alternately): a BN momentum or
  epsilon, a padding, a hardsigmoid slope, a dropped bias (a model difference: that framework
  trains and diffs another spec), a weight decay, an LR schedule one step late (a recipe
  difference). Reported per kind and per verdict: caught / applicable, and the first step align
  parts at; for diff, whether the injected node (or, for a dropped bias, the refused load naming
  the tensor) is what it names. An injection neither verdict catches is a miss (``caught``: align
  parting on the framework given it, naming a recipe difference, or diff naming the node).

Recipe differences are outside diff's reach by design (it compares one network, not a training);
they are counted for align only. All align runs of the corpus share one child process per
framework (``onespec.training.align.execute``); diff runs in one child per framework too.

    python benchmarks/verdicts.py [--random 30] [--zoo 10] [--steps 8] [--out DIR] [--json FILE] [--chunk 4]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from onespec.spec import ModelSpec, parse_spec, trace
from onespec.spec.nodes import Conv

# ten zoo families: fire modules, inverted residuals (with SE and hardswish), channel shuffles
# (split and grouped), residual blocks (with SE), depthwise separable stacks, MicroNet's dynamic
# shift-max, a plain VGG
ZOO = ("squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small", "shufflenet_v2_x0_5", "resnet18", "mobilenet_v1",
       "micronet_m0", "se_resnet18", "shufflenet_v1", "vgg11_cifar")
INJECTIONS = ("bn_momentum", "bn_eps", "padding", "act_slope", "dropped_bias", "weight_decay", "lr_schedule")
RECIPE_KINDS = ("weight_decay", "lr_schedule")
SIDE = 12  # the digits images the random specs see: 3 x SIDE x SIDE
STEPS_PER_EPOCH = 44  # the digits recipe: 1437 training images in batches of 32, the last dropped


def random_specs(n: int, seed: int = 0) -> list[ModelSpec]:
    """``n`` specs drawn (deterministically) from the property strategy, made trainable on the
    digits: a convolution from 3 x SIDE x SIDE to the spec's input first, 10 outputs."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    # the property strategy lives with the tests (tests/strategies.py)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from strategies import specs
    drawn: list[ModelSpec] = []

    @settings(max_examples=n * 3, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(specs(), st.just(seed))
    def collect(spec, _):
        if len(drawn) < n:
            drawn.append(spec)

    collect()
    return [_trainable(s, i) for i, s in enumerate(drawn[:n])]


def _trainable(spec: ModelSpec, i: int) -> ModelSpec:
    doc = json.loads(spec.model_dump_json())
    c, h, w = spec.input_shape
    adapt = Conv(name="adapt", out_channels=c, kernel=(SIDE - h + 1, SIDE - w + 1))
    doc["layers"] = [json.loads(adapt.model_dump_json()), *doc["layers"]]
    for layer in doc["layers"]:
        if layer.get("name") == "fc":
            layer["out_features"] = 10
    doc.update(name=f"random{i:03d}", input_shape=[3, SIDE, SIDE])
    doc["meta"]["num_classes"] = 10
    return parse_spec(json.dumps(doc).encode())


def zoo_specs(names) -> list[ModelSpec]:
    from onespec.models import resolve

    return [resolve(n, {"input_size": 32}, num_classes=10) for n in names]


def inject(spec: ModelSpec, kind: str) -> tuple[ModelSpec | None, dict, str | None]:
    """(the spec one framework gets or None, that framework's recipe overrides, the node changed);
    (None, {}, None) where ``spec`` has nothing of that kind."""
    if kind == "weight_decay":
        return None, {"optimizer.weight_decay": 5e-4}, None
    if kind == "lr_schedule":  # a one-step warmup from 0: every LR one step late
        return None, {"schedule.warmup_epochs": 1.0 / STEPS_PER_EPOCH}, None
    doc = json.loads(spec.model_dump_json())
    rows = {r.path: r for r in trace(spec)}
    # a bias dropped from the last layer that has one: a conv bias before a BN is zero at the
    # training initialisation and gets no gradient, so dropping it changes nothing in training
    order = reversed(rows) if kind == "dropped_bias" else iter(rows)
    for path in order:
        r = rows[path]
        node = _find(doc["layers"], path)
        if node is None:
            continue
        if kind in ("bn_momentum", "bn_eps") and r.op == "batchnorm":
            node.update(momentum=0.3) if kind == "bn_momentum" else node.update(eps=1e-2)
        elif kind == "padding" and r.op == "conv" and _pad(node) > 0 and path != "adapt":
            node["padding"] = _pad(node) - 1 if _pad(node) > 1 else 2
        elif kind == "act_slope" and r.op == "hardsigmoid":  # torch's 1/6 against Paddle's 0.2, either way
            node["slope"] = 1 / 6 if abs(node.get("slope", 1 / 6) - 0.2) < 1e-9 else 0.2
        elif kind == "dropped_bias" and r.op in ("conv", "linear") and node.get("bias", True) and path != "adapt":
            node["bias"] = False
        else:
            continue
        try:
            other = parse_spec(json.dumps(doc).encode())
        except Exception:  # noqa: BLE001 - a change the network cannot take (shapes): try the next node
            other = None
        if other is not None and _same_tensors(spec, other):
            return other, {}, path
        doc = json.loads(spec.model_dump_json())
    return None, {}, None


def _same_tensors(spec: ModelSpec, other: ModelSpec) -> bool:
    """``other`` takes ``spec``'s state (less a dropped bias): the injection changes how the
    network computes, not which tensors it has (a padding that changes a flattened size would)."""
    from onespec.weights import layout

    mine = layout(spec)
    return all(k in mine and mine[k].shape == t.shape for k, t in layout(other).items())


def _pad(node: dict) -> int:
    p = node.get("padding", 0)
    return p if isinstance(p, int) else -1


def _find(layers: list, path: str):
    head, _, rest = path.partition(".")
    for layer in layers:
        if layer.get("name") == head:
            if not rest:
                return layer
            return _find(layer.get("layers", []), rest)
    return None


def run_align(cases: list[tuple[ModelSpec, tuple[str, ...]]], steps: int, out: str) -> list[dict]:
    """Every (model, kinds) case: the model clean and/or with each injection kind it can take, in
    one batch of align runs."""
    from onespec.backends import FRAMEWORKS
    from onespec.training.align import execute, finish, prepare

    plans, meta = [], []
    for i, (spec, kinds) in enumerate(cases):
        target = ("paddle", "mindspore")[i % 2]
        for kind in kinds:
            other, over, node = (None, {}, None) if kind == "clean" else inject(spec, kind)
            if kind != "clean" and other is None and not over:
                continue
            d = os.path.join(out, "align", f"{spec.name}-{kind}")
            # an injected case trains the reference and the target only: the clean case judged the third
            backends = FRAMEWORKS if kind == "clean" else (FRAMEWORKS[0], target)
            plans.append(prepare(spec, None, backends=backends, steps=steps, out=d,
                                 per_backend={target: over} if over else None,
                                 spec_for={target: other} if other is not None else None))
            meta.append({"model": spec.name, "kind": kind, "target": target, "node": node})
    env, errors = execute(plans)
    results = []
    for plan, m in zip(plans, meta):
        failed = [e for k, e in errors.items() if k.startswith(plan.out + os.sep)]
        if failed:
            results.append({**m, "verdict": "error", "error": failed[0]})
            continue
        rep = finish(plan, env, diagnose=False, figures=False)
        _prune(plan)
        parts = [b for b in rep.backends if any(f.startswith(f"{b} ") or f.startswith(f"{b}:") for f in rep.failures)]
        step = _first_step(rep, m["target"]) if parts else None
        results.append({**m, "verdict": "parts" if parts else "aligned", "parts": parts, "step": step,
                        "named": m["kind"] in RECIPE_KINDS and any("the recipes differ" in f for f in rep.failures),
                        "excess": rep.excess})
    return results


def _prune(plan) -> None:
    """Drop a judged plan's checkpoints and optimizer states (the snapshots and metrics stay, for
    judging again): a zoo model's runs hold 0.4-1.5 GB of them, and the 30+10 corpus filled 25 GB."""
    import glob
    import shutil

    for d in glob.glob(os.path.join(plan.out, "*", "commits", "*")):
        shutil.rmtree(os.path.join(d, "checkpoints"), ignore_errors=True)
        for f in glob.glob(os.path.join(d, "optimizer.npz")):
            os.remove(f)


def _first_step(rep, b: str) -> int | None:
    steps = [r["step"] for r in rep.rows if r["d64"][b] > r["tolerance"] or r["lr_by"][b] != r["lr"]]
    steps += [p["step"] for p in rep.params if p["rel64"][b] > p["tolerance"] or p["state64"][b] > p["state_tolerance"]
              or p.get("unlike", {}).get(b)]
    return min(steps) if steps else None


def run_diff(cases: list[tuple[ModelSpec, tuple[str, ...]]], out: str) -> list[dict]:
    """diff of every case's model clean in each framework and with each model injection of its
    kinds in its target framework, eval forward and train mode with backward; one child per
    framework."""
    from onespec._proc import run_child
    from onespec.backends import FRAMEWORKS

    jobs = {b: [] for b in FRAMEWORKS}
    for i, (spec, kinds) in enumerate(cases):
        target = ("paddle", "mindspore")[i % 2]
        path = os.path.join(out, "diff", f"{spec.name}.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(spec.model_dump_json())
        if "clean" in kinds:
            for b in FRAMEWORKS:
                jobs[b].append({"model": spec.name, "kind": "clean", "spec": path, "other": None, "node": None})
        for kind in kinds:
            if kind == "clean" or kind in RECIPE_KINDS:
                continue
            other, _, node = inject(spec, kind)
            if other is None:
                continue
            opath = os.path.join(out, "diff", f"{spec.name}-{kind}.json")
            with open(opath, "w") as f:
                f.write(other.model_dump_json())
            jobs[target].append({"model": spec.name, "kind": kind, "spec": path, "other": opath, "node": node})
    results = []
    for b, js in jobs.items():
        jp = os.path.join(out, "diff", f"jobs-{b}.json")
        with open(jp, "w") as f:
            json.dump(js, f)
        here = os.path.abspath(__file__)  # this script, run as __main__ in an isolated child
        code, so, se = run_child(["-c", f"import runpy, sys; sys.argv[0] = {here!r}; "
                                        f"runpy.run_path({here!r}, run_name='__main__')", "--diff-worker", b, jp])
        if code != 0:
            raise SystemExit(f"diff worker {b} failed: {se.decode(errors='replace')[-2000:]}")
        results += json.loads(so.decode().strip().splitlines()[-1])
    return results


def _diff_worker(backend: str, jobs_path: str) -> None:
    """One framework's diffs: each job's network (``other``: the injected spec) against the spec."""
    from onespec._proc import child_init, data_channel
    from onespec.backends import load_backend
    from onespec.conformance.calibration import calibrate
    from onespec.conformance.diff import diff
    from onespec.conformance.numerics import without_dropout
    from onespec.errors import OnespecError
    from onespec.weights import init_state

    child_init()
    data_out = data_channel()
    be = load_backend(backend)
    results = []
    for job in json.load(open(jobs_path)):
        spec = parse_spec(open(job["spec"], "rb").read())
        other = parse_spec(open(job["other"], "rb").read()) if job["other"] else spec
        x = np.random.default_rng(0).standard_normal((2, *spec.input_shape))
        state = {k: v.astype(np.float32) for k, v in calibrate(spec, init_state(spec, 0), x)[0].items()}
        for mode, backward in (("eval", False), ("train", True)):
            res = {**{k: job[k] for k in ("model", "kind", "node")}, "backend": backend, "mode": mode}
            try:
                # train mode sets dropout to 0 (each framework draws its own masks): the network too
                net = be.build(without_dropout(other) if mode == "train" else other)
                rep = diff(spec, backend, net, state=state, mode=mode, backward=backward)
                named = [f["path"] for f in (rep.first, rep.backward_first) if f]
                res.update(verdict="parts" if named else "clean", named=named)
            except (OnespecError, ValueError, KeyError) as err:  # a load refused names the tensor
                res.update(verdict="refused", named=[str(err).splitlines()[0][:300]])
            results.append(res)
    data_out.write(json.dumps(results) + "\n")
    data_out.flush()


def summarize(align_rows: list[dict], diff_rows: list[dict]) -> dict:
    """False alarms and misses per verdict, per injection kind."""
    out = {"align": {}, "diff": {}}
    clean = [r for r in align_rows if r["kind"] == "clean"]
    confirmed = {(r["model"], r["backend"]) for r in diff_rows if r["kind"] == "clean" and r["verdict"] == "parts"}
    # a clean model parting where diff names a node of that framework is a real difference of the
    # framework (a port bug both verdicts find), not a false alarm
    real = [r for r in clean if r["verdict"] == "parts" and all((r["model"], b) in confirmed for b in r["parts"])]
    out["align"]["false_alarms"] = [sum(r["verdict"] != "aligned" for r in clean) - len(real), len(clean)]
    out["align"]["framework_differences"] = [{"model": r["model"], "frameworks": r["parts"]} for r in real]
    out["align"]["errors"] = [r for r in align_rows if r["verdict"] == "error"]
    for kind in INJECTIONS:
        rows = [r for r in align_rows if r["kind"] == kind and r["verdict"] != "error"]
        caught = [r for r in rows if r["target"] in r.get("parts", [])]
        out["align"][kind] = {"caught": len(caught), "applicable": len(rows),
                              "steps": sorted(r["step"] for r in caught if r["step"] is not None),
                              "recipe_named": sum(r["named"] for r in caught)}
    out["caught"] = caught_by_either(align_rows, diff_rows)
    for mode in ("eval", "train"):
        dclean = [r for r in diff_rows if r["kind"] == "clean" and r["mode"] == mode]
        parted = {(r["model"], b) for r in align_rows if r["kind"] == "clean" for b in r.get("parts", [])}
        alarms = [r for r in dclean if r["verdict"] != "clean" and (r["model"], r["backend"]) not in parted]
        out["diff"][f"{mode}_false_alarms"] = [len(alarms), len(dclean)]
        out["diff"][f"{mode}_framework_differences"] = [{"model": r["model"], "backend": r["backend"],
                                                          "node": r["named"]} for r in dclean
                                                         if r["verdict"] != "clean" and r not in alarms]
        for kind in INJECTIONS:
            rows = [r for r in diff_rows if r["kind"] == kind and r["mode"] == mode]
            if rows:
                exact = [r for r in rows if diff_names(r)]
                out["diff"][f"{mode}:{kind}"] = {"caught": sum(r["verdict"] != "clean" for r in rows),
                                                 "named_exactly": len(exact), "applicable": len(rows)}
    return out


def diff_names(r: dict) -> bool:
    """A diff row that names the injected node (or refuses the load, naming the dropped tensor)."""
    return r["verdict"] == "refused" or (r["node"] is not None and r["node"] in r["named"])


def caught_by_either(align_rows: list[dict], diff_rows: list[dict]) -> dict:
    """Per injection kind, [caught, applicable, missed models]: an injection is caught when align
    parts on the framework given it (a recipe difference: or names it from the recipe check) or
    diff, in either mode, names the injected node. A hardsigmoid slope the data never reach the
    linear part of changes no step of training (align cannot part on it) but changes the network,
    which diff's random input shows."""
    out = {}
    for kind in INJECTIONS:
        cases = {(r["model"], r["target"]) for r in align_rows if r["kind"] == kind and r["verdict"] != "error"}
        cases |= {(r["model"], r["backend"]) for r in diff_rows if r["kind"] == kind}
        missed = []
        for model, target in sorted(cases):
            by_align = any(r["model"] == model and r["kind"] == kind and target in r.get("parts", [])
                           for r in align_rows)
            by_diff = any(r["model"] == model and r["kind"] == kind and diff_names(r) for r in diff_rows)
            if not (by_align or by_diff):
                missed.append(model)
        out[kind] = [len(cases) - len(missed), len(cases), missed]
    return out


def _chunk_order(n: int, size: int) -> list[range]:
    """The corpus in chunks of ``size`` (even: a case's target framework goes by its parity in
    the corpus, which a chunk keeps), from the front and from the back alternately, so that random
    specs and zoo models both get figures from the first chunks on."""
    chunks = [range(i, min(i + size, n)) for i in range(0, n, size)]
    half = (len(chunks) + 1) // 2
    return [c for pair in zip(chunks[:half], [*chunks[half:][::-1], None]) for c in pair if c is not None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=30)
    ap.add_argument("--zoo", type=int, default=10)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--out", default="verdicts-bench")
    ap.add_argument("--json")
    ap.add_argument("--no-diff", action="store_true")
    ap.add_argument("--chunk", type=int, default=0,
                    help="models per batch of runs (even); the figures so far are written after each")
    ap.add_argument("--diff-worker", nargs=2, metavar=("BACKEND", "JOBS"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.diff_worker:
        _diff_worker(*a.diff_worker)
        return 0
    if a.chunk < 0 or a.chunk % 2:
        ap.error("--chunk must be an even number of models (0: all at once)")
    t0 = time.perf_counter()
    cases = [(m, ("clean", *INJECTIONS)) for m in random_specs(a.random) + zoo_specs(ZOO[:a.zoo])]
    out = os.path.abspath(a.out)
    rows, drows, done = [], [], []
    for chunk in _chunk_order(len(cases), a.chunk or len(cases)):
        part = [cases[i] for i in chunk]
        rows += run_align(part, a.steps, out)
        drows += [] if a.no_diff else run_diff(part, out)
        done += [spec.name for spec, _ in part]
        summary = summarize(rows, drows)
        summary["seconds"] = round(time.perf_counter() - t0)
        summary["corpus"] = {"random": a.random, "zoo": list(ZOO[:a.zoo]), "steps": a.steps, "done": done}
        print(f"{len(done)}/{len(cases)} models, {summary['seconds']} s", file=sys.stderr, flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"summary": summary, "align": rows, "diff": drows}, f, indent=1, default=str)
    print(json.dumps(summary, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
