"""``onespec bench``: onespec's networks against the framework's own zoo models, side by side.

For each framework, one process: each model is built by onespec and by the framework's zoo
(the backend's ``bench_harness`` and ``FRAMEWORK.bench_zoo``: torchvision, ``paddle.vision.models``,
MindCV's ``create_model``), both in the framework's run mode (``FRAMEWORK.bench_modes``, for
MindSpore "pynative" (default: MindSpore's asynchronous launch queue, which onespec's network on
CPU sets aside for its own calls, as a user gets it), "sync" (PYNATIVE with
``pynative_synchronize`` for both: no launch queue, far steadier on a 2-core CPU) or "graph"
(GRAPH_MODE)), then timed in alternating rounds (onespec, reference, onespec, ...) so that
machine noise hits both alike; the sides of a framework with ``bench_isolated`` (MindSpore) each
in a process of their own (:class:`_Isolated`), the rounds alternating between the processes.
Reported per model and batch: median eval-forward time, median training-step time (forward,
cross-entropy backward, SGD update) with ``train``, construction time, the peak resident memory
of construction plus one forward (each side alone in a fresh process, :func:`memory`), and the
ratio onespec / reference (< 1: onespec faster) with the range of the rounds' own ratios.
``fold`` adds onespec's BN-folded network (``onespec.fold``) to the eval rows; each build option
of a framework's ``bench_options`` (torch's ``channels_last``, ``compile``) adds onespec's network
and the zoo's built with it (a like-for-like ratio), and with ``fold`` the folded network built
with it.

A spec file or ``module:function`` (``onespec.models``) has no zoo counterpart: its rows time
onespec's networks alone (no reference, no ratio).
"""
from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

from .backends import framework as descriptor
from .backends import frameworks
from .errors import OnespecError

DEFAULT_MODELS = ["mobilenet_v2", "mobilenet_v3_large", "shufflenet_v2_x1_0", "squeezenet1_1", "resnet50", "vgg11"]


class BenchError(OnespecError, ValueError):
    pass


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Side:
    """One network under test: ``forward()`` (eval) and ``step()`` (train) callables on its batch."""
    name: str
    forward: object
    step: object
    build_s: float


def _union_of(names, field: str) -> tuple[str, ...]:
    """The values of descriptor ``field`` over frameworks ``names``, in order, once each."""
    return tuple(dict.fromkeys(v for fw in names for v in getattr(descriptor(fw), field)))


# the command line's choices: every framework's build options and run modes
TORCH_OPTIONS, MS_MODES = _union_of(frameworks(), "bench_options"), _union_of(frameworks(), "bench_modes")


def _mode(framework: str, mode: str) -> str:
    """``mode`` where ``framework`` has run modes (its default when ``mode`` is not one), else ""."""
    modes = descriptor(framework).bench_modes
    return "" if not modes else mode if mode in modes else modes[0]


def sides(framework: str, model: str, batch: int, train: bool, fold: bool, ms_mode: str = "pynative",
          only=None, options=()) -> list[Side]:
    """onespec's network, the zoo's, with ``fold`` onespec's folded one; per build option in
    ``options`` onespec's network, the zoo's and (with ``fold``) the folded one built with it
    (``only``: those labels), each built, run once, and wrapped in timed callables."""
    import onespec
    from .backends import load_backend
    from .models import resolve

    be = load_backend(framework)
    fw = be.bench_harness(_mode(framework, ms_mode))
    spec = resolve(model, spec_options(framework, model))

    def folded(**option):
        f, st = onespec.fold(spec, onespec.init_state(spec, 0))
        net = be.build(f)
        be.load_state(net, f, st)
        return fw.speed(net, len(f.input_shape), **option) if option else net

    def reference(**option):
        net = fw.reference(model)
        return fw.speed(net, len(spec.input_shape), **option) if option else net

    makers = {"onespec": lambda: be.build(spec), "reference": reference, "onespec folded": folded}
    for o in options:
        makers.update({f"onespec {o}": lambda o=o: be.build(spec, **{o: True}),
                       f"reference {o}": lambda o=o: reference(**{o: True}),
                       f"onespec folded {o}": lambda o=o: folded(**{o: True})})
    out = []
    for label in side_labels(fold, options, has_reference(framework, model)):
        if only and label not in only:
            continue
        make = makers[label]
        t0 = time.perf_counter()
        net = make()
        built = time.perf_counter() - t0
        x, y = fw.inputs(spec.input_shape, batch)
        fw.forward(net, x)
        trains = train and not label.startswith("onespec folded")
        out.append(Side(label, lambda net=net, x=x: fw.forward(net, x), fw.stepper(net, x, y) if trains else None,
                        built))
    return out


def side_labels(fold: bool, options=(), reference: bool = True) -> list[str]:
    """The sides :func:`sides` builds, in order (``reference``: the zoo's network among them)."""
    refs = ["reference"] if reference else []
    labels = ["onespec", *refs] + (["onespec folded"] if fold else [])
    for o in options:
        labels += [f"onespec {o}", *[f"{r} {o}" for r in refs]] + ([f"onespec folded {o}"] if fold else [])
    return labels


def has_reference(framework: str, model: str) -> bool:
    """Whether the framework's zoo holds ``model`` (a spec file or module:function: never)."""
    return model in descriptor(framework).bench_zoo


class _Isolated:
    """One side built and timed in its own process (``python -m onespec.bench --side``), driven
    over its pipes: it answers ``"eval N"`` / ``"train N"`` with the mean seconds of N calls.
    MindSpore needs it: its PYNATIVE process state depends on how the process ran its first ops
    (once one op has gone through the asynchronous launch queue, the queue's threads stay in
    the path of every later op, synchronous ones included), so two networks in one process
    are not timed as a user running either alone would time them."""

    def __init__(self, framework, model, batch, train, fold, ms_mode, label):
        from ._proc import python_child
        self.name = label
        self.proc = python_child(["-m", "onespec.bench", "--side", framework, model, str(batch), str(int(train)),
                                  str(int(fold)), ms_mode, label],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        hello = self._answer()
        self.build_s, self.peak_mb, self.trains = hello["build_s"], hello["rss_mb"], hello["trains"]

    def _answer(self):
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise BenchError(f"the {self.name!r} side's process ended (exit {code}) before answering")
        return json.loads(line)

    def timer(self, kind):
        def time_it(iters):
            self.proc.stdin.write(f"{kind} {iters}\n")
            self.proc.stdin.flush()
            return self._answer()["s"]
        return time_it

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _side_worker(framework, model, batch, train, fold, ms_mode, label) -> None:
    """The child of :class:`_Isolated`: builds ``label`` (peak memory as :func:`memory` measures
    it), then times what it is asked until its input ends."""
    from ._proc import data_channel

    data_out = data_channel()
    side, rss_mb = _built_alone(framework, model, batch, train, fold, ms_mode, label)
    data_out.write(json.dumps({"build_s": side.build_s, "rss_mb": rss_mb, "trains": side.step is not None}) + "\n")
    data_out.flush()
    for line in sys.stdin:
        kind, iters = line.split()
        fn = side.forward if kind == "eval" else side.step
        data_out.write(json.dumps({"s": _median_time(fn, int(iters))}) + "\n")
        data_out.flush()


def spec_options(framework: str, model: str) -> dict:
    """The zoo options that make onespec's network the reference's architecture: the registry's
    importer overrides for the reference library (MindCV's ResNets pool their stem "same",
    its ShuffleNet V2 is Megvii's, its MobileNetV3 pads depthwise convs "same"), so that the two
    sides compute the same function."""
    from .models import kind
    from .zoo.registry import entry
    if kind(model) != "zoo":
        return {}
    imp = entry(model).importers.get(descriptor(framework).bench_library)
    return dict(imp.overrides) if imp else {}


def _median_time(fn, iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters


def measure(framework: str, model: str, batch: int, *, rounds: int = 5, train: bool = False,
            fold: bool = False, budget_s: float = 20.0, ms_mode: str = "pynative", options=()) -> dict:
    """One model at one batch in this process's framework: per side, medians over ``rounds``
    alternating rounds (each round as many iterations as fit ``budget_s / rounds / sides``)."""
    fw = descriptor(framework)
    mode = _mode(framework, ms_mode)
    shown = f" {mode}" if fw.bench_modes and mode != fw.bench_modes[0] else ""
    row = {"framework": framework + shown, "model": model, "batch": batch,
           "reference": fw.bench_zoo_name if has_reference(framework, model) else None,
           "spec_options": spec_options(framework, model)}
    isolated = []
    try:
        if fw.bench_isolated:
            for label in side_labels(fold, options, has_reference(framework, model)):  # one at a time
                isolated.append(_Isolated(framework, model, batch, train, fold, ms_mode, label))
            timers = {kind: {s.name: s.timer(kind) for s in isolated if kind == "eval" or s.trains}
                      for kind in ("eval", "train")}
            built = isolated
            row["peak_mb"] = {s.name: s.peak_mb for s in isolated}
        else:
            built = sides(framework, model, batch, train, fold, ms_mode, options=options)
            timers = {kind: {s.name: (lambda n, f=(s.forward if kind == "eval" else s.step): _median_time(f, n))
                             for s in built if kind == "eval" or s.step} for kind in ("eval", "train")}
        _time_rounds(row, timers, rounds, budget_s, train, options)
    finally:
        for s in isolated:
            s.close()
    row["build_s"] = {s.name: round(s.build_s, 3) for s in built}
    return row


def _time_rounds(row, timers, rounds, budget_s, train, options) -> None:
    """Alternating rounds over the sides' timers (``timer(iters) -> seconds per call``); medians,
    ratios and speedups into ``row``."""
    for kind in ("eval", "train") if train else ("eval",):
        fns = timers[kind]
        for f in fns.values():  # warm up (graph compilation, allocator)
            f(1)
        one = max(min(f(1) for f in fns.values()), 1e-4)
        iters = max(1, int(budget_s / rounds / len(fns) / one))
        times = {k: [] for k in fns}
        for _ in range(rounds):
            for k, f in fns.items():
                times[k].append(f(iters))
        med = {k: statistics.median(v) for k, v in times.items()}
        row[kind] = {k: round(v * 1000, 3) for k, v in med.items()}  # ms
        if "reference" not in med:
            continue  # a model of the user's: onespec's sides alone
        row[f"{kind}_ratio"] = round(med["onespec"] / med["reference"], 3)
        # the ratio within each timing round (both sides timed back to back): a median ratio
        # whose per-round range straddles 1.00 is not told apart from parity by this run
        per_round = [o / r for o, r in zip(times["onespec"], times["reference"])]
        row[f"{kind}_ratio_range"] = [round(min(per_round), 3), round(max(per_round), 3)]
        if "onespec folded" in med:
            row["folded_speedup"] = round(med["reference"] / med["onespec folded"], 3)
        for o in options:
            # like for like: onespec's network and the zoo's, both with the option
            row.setdefault(f"{kind}_option_ratio", {})[o] = round(med[f"onespec {o}"] / med[f"reference {o}"], 3)
            if f"onespec folded {o}" in med:
                row.setdefault("folded_option_speedup", {})[o] = {
                    "vs reference": round(med["reference"] / med[f"onespec folded {o}"], 3),
                    f"vs reference {o}": round(med[f"reference {o}"] / med[f"onespec folded {o}"], 3)}


def run(models, frameworks, batches, *, rounds: int = 5, train: bool = False, fold: bool = False,
        budget_s: float = 20.0, ms_mode: str = "pynative", progress=None, torch_options=()) -> list[dict]:
    """Every framework in its own child process; rows of :func:`measure`. ``torch_options``:
    build options timed as extra onespec sides (rows of the frameworks that have them);
    ``ms_mode``: the run mode of the frameworks that have modes."""
    from ._proc import run_child

    if not batches or any(b < 1 for b in batches):
        raise BenchError(f"batch sizes must be positive integers, not {list(batches)}")
    if rounds < 1:
        raise BenchError(f"rounds must be at least 1, not {rounds}")
    if not 0 < budget_s < float("inf"):  # NaN fails too
        raise BenchError(f"budget must be a positive number of seconds, not {budget_s}")
    modes, options = _union_of(frameworks, "bench_modes"), _union_of(frameworks, "bench_options")
    if modes and ms_mode not in modes:
        moded = [fw for fw in frameworks if descriptor(fw).bench_modes]
        raise BenchError(f"unknown run mode {ms_mode!r} of {', '.join(moded)}; choose from {', '.join(modes)}")
    bad = [o for o in torch_options if o not in options]
    if bad:
        raise BenchError(f"unknown build option {', '.join(bad)}; choose from {', '.join(options) or 'none'}")
    from .models import kind, resolve, spec_file
    specs = {m: resolve(m) for m in models}  # a bad model fails here, before any framework starts
    code = [m for m in models if kind(m) == "code"]
    if code:  # the children read the resolved specs: the user's code runs here only
        with contextlib.ExitStack() as stack:
            paths = {m: stack.enter_context(spec_file(specs[m])) for m in code}
            names = {p: m for m, p in paths.items()}

            def said(msg: str) -> None:
                for p, m in names.items():
                    msg = msg.replace(p, m)
                progress(msg)
            rows = run([paths.get(m, m) for m in models], frameworks, batches, rounds=rounds, train=train, fold=fold,
                       budget_s=budget_s, ms_mode=ms_mode, progress=said if progress else None,
                       torch_options=torch_options)
        for r in rows:
            r["model"] = names.get(r["model"], r["model"])
        return rows
    for fw in frameworks:
        zoo = descriptor(fw).bench_zoo
        unknown = [m for m in models if kind(m) == "zoo" and m not in zoo]
        if unknown:
            raise BenchError(f"{fw} has no zoo reference for {', '.join(unknown)}; "
                             f"benchmarkable: {', '.join(sorted(zoo)) or 'nothing'}")
    rows = []
    for fw in frameworks:
        for m in models:
            for b in batches:
                if progress:
                    progress(f"[{fw}] {m} batch {b}")
                opts = ",".join(o for o in torch_options if o in descriptor(fw).bench_options)
                code, so, se = run_child(["-m", "onespec.bench", fw, m, str(b), str(rounds), str(int(train)),
                                          str(int(fold)), str(budget_s), ms_mode, opts])
                if code != 0:
                    tail = se.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                    raise BenchError(f"{fw} {m} batch {b}: {tail[0][:500]}")
                row = json.loads(so.decode().strip().splitlines()[-1])
                row.setdefault("peak_mb", {})
                for side in row["build_s"]:
                    if side.split()[-1] in options or side in row["peak_mb"]:
                        continue  # the same parameters as the network without the option, or measured
                    code, so, se = run_child(["-m", "onespec.bench", "--memory", fw, m, str(b), side,
                                              ms_mode])
                    if code == 0:
                        row["peak_mb"][side] = json.loads(so.decode().strip().splitlines()[-1])["rss_mb"]
                rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    def ratio(r, kind):
        if f"{kind}_ratio" not in r:
            return "-"
        lo, hi = r.get(f"{kind}_ratio_range", (r[f"{kind}_ratio"],) * 2)
        return f"{r[f'{kind}_ratio']:.2f} ({lo:.2f}-{hi:.2f})"

    out = [f"{'framework':<14} {'model':<20} {'batch':>5} {'onespec ms':>11} {'reference ms':>13} "
           f"{'ratio (rounds)':>16} {'train ratio (rounds)':>20} {'folded x':>9} {'build s (onespec/ref)':>22} "
           f"{'peak MB (onespec/ref)':>22}"]
    nan = float("nan")
    for r in rows:
        ev = r["eval"]
        fo = f"{r['folded_speedup']:.2f}" if "folded_speedup" in r else "-"
        out.append(f"{r['framework']:<14} {r['model']:<20} {r['batch']:>5} {ev['onespec']:>11.2f} "
                   f"{ev.get('reference', nan):>13.2f} {ratio(r, 'eval'):>16} {ratio(r, 'train'):>20} {fo:>9} "
                   f"{r['build_s']['onespec']:>10.2f}/{r['build_s'].get('reference', nan):<11.2f} "
                   f"{r['peak_mb'].get('onespec', float('nan')):>10.0f}/"
                   f"{r['peak_mb'].get('reference', float('nan')):<10.0f}")
        for kind in ("eval", "train"):
            for o, v in r.get(f"{kind}_option_ratio", {}).items():
                line = (f"{'':<14} {'':<20} {'':>5}   {o:<14} {kind:<5} {r[kind]['onespec ' + o]:>9.2f} "
                        f"{r[kind]['reference ' + o]:>13.2f} {v:>6.2f}")
                if kind == "eval" and o in r.get("folded_option_speedup", {}):
                    sp = r["folded_option_speedup"][o]
                    line += (f"   folded {o} {r['eval']['onespec folded ' + o]:.2f} ms: x {sp['vs reference']:.2f} "
                             f"vs the reference, x {sp['vs reference ' + o]:.2f} vs the reference {o}")
                out.append(line)
    out.append("ratio = onespec time / reference time (< 1: onespec faster), the median's and in parentheses the "
               "lowest and highest of the rounds' own ratios; reference: "
               + (", ".join(dict.fromkeys(r["reference"] for r in rows if r.get("reference"))) or "none")
               + "; folded x = reference time / "
               "folded time; a build option's row: both networks built with it")
    return "\n".join(out)


def memory(framework: str, model: str, batch: int, side: str, ms_mode: str = "pynative") -> float:
    """Peak resident memory (MB) of building ``side`` and running one eval forward, above this
    process's after the framework's import: run in a fresh process per side, since an allocator
    keeps what an earlier network freed and the second network measured in one process looks
    smaller."""
    return _built_alone(framework, model, batch, False, side == "onespec folded", ms_mode, side)[1]


def _built_alone(framework, model, batch, train, fold, ms_mode, label) -> tuple[Side, float]:
    """The one side ``label`` built and run once in this process, and the peak resident memory
    (MB) that took above the framework and its zoo library imported."""
    import importlib
    import resource

    from .backends import load_backend

    load_backend(framework)
    for module in descriptor(framework).bench_imports:
        importlib.import_module(module)
    base = _rss_mb()
    (side,) = sides(framework, model, batch, train, fold, ms_mode, only={label})
    return side, round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base, 1)


def _worker(argv) -> int:
    from ._proc import child_init, data_channel

    child_init()
    if argv[0] == "--memory":
        fw, model, batch, side, ms_mode = argv[1:]
        print(json.dumps({"rss_mb": memory(fw, model, int(batch), side, ms_mode)}), flush=True)
        return 0
    if argv[0] == "--side":
        fw, model, batch, train, fold, ms_mode, label = argv[1:]
        _side_worker(fw, model, int(batch), bool(int(train)), bool(int(fold)), ms_mode, label)
        return 0
    fw, model, batch, rounds, train, fold, budget, ms_mode, options = argv
    data_out = data_channel()
    row = measure(fw, model, int(batch), rounds=int(rounds), train=bool(int(train)), fold=bool(int(fold)),
                  budget_s=float(budget), ms_mode=ms_mode, options=[o for o in options.split(",") if o])
    data_out.write(json.dumps(row) + "\n")
    data_out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
