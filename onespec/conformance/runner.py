"""The conformance run: every selected zoo model x every framework, one process per framework."""
from __future__ import annotations

import fnmatch
from concurrent.futures import ThreadPoolExecutor
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..backends import FRAMEWORKS, check_backend, framework, frameworks
from ..weights import StateError, init_state, load_state
from ..zoo import get_spec, list_models
from .numerics import update_errors
from .worker import stem


def select(patterns: list[str] | None) -> list[str]:
    """Zoo names matching any glob pattern (all when none). An unmatched pattern is an error."""
    names = list_models()
    if not patterns:
        return names
    out: list[str] = []
    for pat in patterns:
        hit = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hit:
            raise ValueError(f"no zoo model matches {pat!r}; see `onespec list`")
        out += [n for n in hit if n not in out]
    return out


@dataclass
class Report:
    results: list[dict]
    seconds: dict[str, float] = field(default_factory=dict)
    environment: dict = field(default_factory=dict)  # each worker's numerics environment

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r["status"] == "pass" for r in self.results)

    def totals(self) -> dict[str, dict[str, int]]:
        t: dict[str, dict[str, int]] = {}
        for r in self.results:
            d = t.setdefault(r["backend"], {"pass": 0, "fail": 0, "error": 0})
            d[r["status"]] += 1
        return t

    def to_dict(self) -> dict:
        return {"ok": self.ok, "totals": self.totals(), "seconds": self.seconds, "environment": self.environment,
                "results": self.results}

    def numeric(self) -> bool:
        return any(r.get("numeric_rel_err") is not None for r in self.results)

    def worst(self, key: str) -> dict[str, float]:
        """Worst value of a per-result error (e.g. ``numeric_rel_err``) per backend."""
        out: dict[str, float] = {}
        for r in self.results:
            v = r.get(key)
            if v is not None:
                out[r["backend"]] = max(out.get(r["backend"], 0.0), v)
        return out

    def table(self) -> str:
        numeric = self.numeric()
        head = ["model", "backend", "params", "state", "shapes", "output", "compiled"]
        head += ["vs numpy", "train step"] if numeric else []
        head += ["time", "status"]
        rows = [tuple(head)]
        for r in self.results:
            if r["status"] == "error":
                rows.append((r["model"], r["backend"]) + ("-",) * (len(head) - 3) + ("ERROR",))
                continue
            comp = "-" if r["static_rel_err"] is None else f"{r['static_rel_err']:.1e}"
            row = [r["model"], r["backend"], f"{r['params']:,}", f"{r['state']:,}",
                   f"{r['shapes_ok']}/{r['shapes_checked']}", _shape_text(r["output_shape"]), comp]
            if numeric:
                errs = [e for e in (r.get("numeric_rel_err"), r.get("static_numeric_rel_err")) if e is not None]
                row.append(f"{max(errs):.1e}" if errs else "-")
                row.append(f"{r['train_param_err']:.0e}/{r['train_tensor_err']:.0e}/{r['train_state_err']:.0e}"
                           if "train_param_err" in r else "-")
            rows.append(tuple(row + [f"{r['seconds']:.1f}s", r["status"].upper()]))
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        for r in self.results:
            for p in r["problems"]:
                lines.append(f"! {r['model']} [{r['backend']}]: {p}")
        tot = self.totals()
        summary = ", ".join(f"{b}: {d['pass']}/{sum(d.values())} pass" for b, d in tot.items())
        secs = ", ".join(f"{b} {s:.0f}s" for b, s in self.seconds.items())
        lines.append(f"{summary}  ({secs})")
        if numeric:
            num = {b: max(v, self.worst("static_numeric_rel_err").get(b, 0.0))
                   for b, v in self.worst("numeric_rel_err").items()}
            lines.append("worst output error vs numpy reference (eager and compiled): "
                         + ", ".join(f"{b} {v:.1e}" for b, v in num.items()))
            if self.worst("train_param_err"):  # none stepped: a single framework, or several outputs
                worst = self.worst("train_param_err").items()
                lines.append("worst one-step SGD update error across frameworks (all params / one tensor / running "
                             "stats): " + ", ".join(f"{b} {v:.1e} / {self.worst('train_tensor_err').get(b, 0):.1e} / "
                                                    f"{self.worst('train_state_err').get(b, 0):.1e}" for b, v in worst))
        if self.environment:
            lines.append("environment: " + ", ".join(
                f"{b} {e.get('version')} on {e.get('device')}" + (f", {e['threads']} threads" if e.get("threads") else "")
                for b, e in self.environment.items()) + " (versions, threads and determinism flags in --json)")
        lines.append("CONFORMANCE " + ("PASSED" if self.ok else "FAILED"))
        return "\n".join(lines)


def _shape_text(shape) -> str:
    """2x10, or 2x4x8x8 + 2x10 for a network's several outputs."""
    if shape and isinstance(shape[0], list):
        return " + ".join(map(_shape_text, shape))
    return "x".join(map(str, shape))


def _references(specs, batch, seed, ref_dir, progress) -> float:
    """The weights every framework loads (``init_state(spec, seed)`` with BN statistics calibrated
    on the seeded batch) and the numpy evaluator's output for them."""
    from .calibration import calibrate
    from ..weights import save_state
    from .worker import input_batch

    t0 = time.perf_counter()
    for name, spec in specs.items():
        if progress:
            progress(f"[numpy] reference {name}")
        state, y = calibrate(spec, init_state(spec, seed), input_batch(spec.input_shape, batch, seed))
        save_state(state, os.path.join(ref_dir, f"{stem(name)}.state.npz"))
        ys = y if isinstance(y, tuple) else (y,)  # several outputs: y0, y1 ... in the network's order
        np.savez(os.path.join(ref_dir, f"{stem(name)}.ref.npz"), **{f"y{i}": v for i, v in enumerate(ys)})
    return round(time.perf_counter() - t0, 1)


def _compare_training(results, models, backends, ref_dir) -> None:
    by = {(r["model"], r["backend"]): r for r in results}
    for name in models:
        states = {}
        for b in backends:
            path = os.path.join(ref_dir, f"{stem(name)}.{b}.train.npz")
            if os.path.exists(path):  # absent when that worker failed; its own result says why
                try:
                    states[b] = load_state(path)
                except StateError as err:
                    _fail(by[(name, b)], f"state after one SGD step unreadable: {err}")
        init = load_state(os.path.join(ref_dir, f"{stem(name)}.state.npz"))
        for b, err in (update_errors(init, states) if len(states) > 1 else {}).items():
            r = by[(name, b)]
            r.update(err)
            if not r["train_ok"]:
                _fail(r, f"one SGD step differs from the other frameworks: param update err {r['train_param_err']:.1e}, "
                         f"worst tensor {r['train_worst']} {r['train_tensor_err']:.1e}, running-stat err "
                         f"{r['train_state_err']:.1e}")


def _diagnose(results, ref_dir, diff_dir, seed, progress) -> None:
    """``onespec diff`` for each numerical failure, from the state every framework loaded."""
    from .diff import diagnose

    for r in results:
        probs = r.get("problems", [])
        output = any(p.startswith(("output differs", "compiled output differs")) for p in probs)
        step = any(p.startswith("one SGD step differs") for p in probs)
        if r.get("status") != "fail" or not (output or step):
            continue
        name, b = r["model"], r["backend"]
        if progress:
            progress(f"[{b}] onespec diff {name}")
        line = diagnose(os.path.join(ref_dir, f"{stem(name)}.json"), b, os.path.join(diff_dir, f"{stem(name)}-{b}"),
                        weights=os.path.join(ref_dir, f"{stem(name)}.state.npz"), mode="eval" if output else "train",
                        backward=step, seed=seed)
        r["problems"].append(f"diff: {line}")
        r["diff"] = line


def _fail(r: dict, problem: str) -> None:
    r.setdefault("problems", []).append(problem)
    if r.get("status") == "pass":
        r["status"] = "fail"


def run(models: list[str], backends: list[str] | tuple[str, ...] = FRAMEWORKS, *, batch: int = 2, seed: int = 0,
        static: bool | str = True, overrides: dict | None = None, numerics: bool = False, small: bool = False,
        progress=None, jobs: int | None = None, diff_dir: str | None = None, step: bool | str = True) -> Report:
    """Zoo models (with ``overrides``) through :func:`run_specs`. ``small``: each model at the
    smallest input size that exercises the same cases as its default (``numerics.small_overrides``)."""
    from .numerics import small_overrides

    per_model = {name: small_overrides(name, overrides) if small else dict(overrides or {}) for name in models}
    report = run_specs({name: get_spec(name, **ov) for name, ov in per_model.items()}, backends, batch=batch,
                       seed=seed, static=static, numerics=numerics, progress=progress, jobs=jobs, diff_dir=diff_dir, step=step)
    for r in report.results:
        r["overrides"] = per_model[r["model"]]
    return report


def run_specs(specs: dict, backends: list[str] | tuple[str, ...] = FRAMEWORKS, *, batch: int = 2, seed: int = 0,
              static: bool | str = True, numerics: bool = False, progress=None, jobs: int | None = None,
              diff_dir: str | None = None, step: bool | str = True) -> Report:
    """Run the worker for each backend in a fresh isolated interpreter (frameworks never share a
    process: paddle-before-mindspore cannot load in one process) over ``{label: ModelSpec}``.
    ``static``: run the compiled program (torch.export / paddle.jit.to_static / GRAPH_MODE) for
    every model (True), none (False), or ``"distinct"``: for the fewest models that hold every op
    configuration of the set (``numerics.distinct``; compilation is most of a worker's time).
    ``step`` (with ``numerics``): the one-SGD-step comparison for every model, none, or the
    ``"distinct"`` ones likewise. ``diff_dir``: for every numerical failure, ``onespec diff`` (eval forward for an output
    error; train mode and backward for a training-step error) runs there and its verdict joins
    the model's problems. With
    ``numerics``, outputs are compared with the numpy backend and one training step is compared
    across frameworks. Temporary files live in a guarded directory (removed even if this process
    is killed); workers die with this process."""
    from .._proc import guarded_tempdir

    from .numerics import distinct

    if batch < 1:
        raise ValueError(f"conformance batch must be a positive integer, not {batch}")
    for b in backends:
        check_backend(b, frameworks())
    def which(flag, what):
        if flag not in (True, False, "distinct"):
            raise ValueError(f"{what} must be True, False or 'distinct', not {flag!r}")
        return set(specs) if flag is True else set(distinct(specs)) if flag == "distinct" else set()
    compiled, stepped = which(static, "static"), which(step, "step")
    jobs = jobs or int(os.environ.get("ONESPEC_JOBS", 0)) or min(len(backends), os.cpu_count() or 1)
    models = list(specs)
    results: list[dict] = []
    seconds: dict[str, float] = {k: 0.0 for k in (["numpy"] if numerics else []) + list(backends)}
    # Chunk by chunk, every framework on a chunk before the next: the training states of the whole
    # zoo take ~6 GB per framework on disk, one chunk's at most ~0.8 GB.
    for part in chunks(specs):
        with guarded_tempdir() as ref_dir:
            for name in part:
                with open(os.path.join(ref_dir, f"{stem(name)}.json"), "w") as f:
                    f.write(specs[name].model_dump_json())
            if numerics:
                seconds["numpy"] += _references({n: specs[n] for n in part}, batch, seed, ref_dir, progress)
            chunk_results = []

            def one(task):
                b, models = task
                if progress:
                    progress(f"[{b}] {', '.join(models)}")
                t0 = time.perf_counter()
                out = _run_worker(b, models, batch, seed, [m for m in models if m in compiled], ref_dir, numerics,
                                  [m for m in models if m in stepped])
                seconds[b] += time.perf_counter() - t0
                return out

            # Frameworks in parallel, `jobs` workers at a time: most of a worker's time is
            # single-threaded (imports, graph capture and compilation), so two share this 2-core
            # machine well. With fewer slots than frameworks, each framework's models go in two
            # halves, slowest frameworks first, so that no slot idles while one framework finishes.
            with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
                for out in pool.map(one, _tasks(part, backends, jobs)):
                    chunk_results += out
            if numerics:
                _compare_training(chunk_results, part, backends, ref_dir)
                if diff_dir:
                    _diagnose(chunk_results, ref_dir, diff_dir, seed, progress)
        results += chunk_results
    seconds = {k: round(v, 1) for k, v in seconds.items()}
    environment = {}
    for r in results:
        env = r.pop("environment", None)
        if env:
            environment.setdefault(r["backend"], env)
    order = {b: i for i, b in enumerate(backends)}
    position = {m: i for i, m in enumerate(models)}
    results.sort(key=lambda r: (order.get(r["backend"], len(order)), position.get(r["model"], 0)))
    return Report(results, seconds, environment)


def _tasks(part: list[str], backends, jobs: int) -> list[tuple[str, list[str]]]:
    if jobs >= len(backends) or len(part) < 2:
        return [(b, part) for b in backends]
    halves = [part[0::2], part[1::2]]  # interleaved: both halves get big and small models
    order = sorted(backends, key=lambda b: -framework(b).cost)  # the slowest workers first
    return [(b, h) for h in halves for b in order]


# MindSpore (and to a lesser degree Paddle) keeps memory of every network built in a process;
# VGG-sized nets with their compiled graphs and a training step grew one worker past 20 GB.
# Workers therefore get batches of models holding at most this many parameters in all.
CHUNK_PARAMS = 200_000_000
CHUNK_MODELS = 10


def chunks(specs: dict) -> list[list[str]]:
    from ..spec import analyze

    out: list[list[str]] = [[]]
    total = 0
    for name, spec in specs.items():
        p = analyze(spec).params
        if out[-1] and (total + p > CHUNK_PARAMS or len(out[-1]) == CHUNK_MODELS):
            out.append([])
            total = 0
        out[-1].append(name)
        total += p
    return out


def _run_worker(b, models, batch, seed, compiled, work_dir, numerics, stepped) -> list[dict]:
    from .._proc import run_child

    out = os.path.join(work_dir, f"result.{b}.json")
    cmd = ["-m", "onespec.conformance.worker", "--backend", b, "--models", ",".join(models),
           "--out", out, "--batch", str(batch), "--seed", str(seed), "--spec-dir", work_dir]
    cmd += ["--compiled", ",".join(compiled), "--stepped", ",".join(stepped)]
    cmd += ["--ref-dir", work_dir] if numerics else []
    code, stdout, stderr = run_child(cmd)
    if code != 0 or not os.path.exists(out):
        tail = (stderr or stdout).decode(errors="replace")[-2000:]
        return [{"model": m, "backend": b, "status": "error",
                 "problems": [f"worker exited with {code}: {tail}"]} for m in models]
    with open(out) as f:
        return json.load(f)  # results; the first carries the worker's "environment"
