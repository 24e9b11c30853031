"""``onespec bench``: onespec's networks against the framework's own zoo models, side by side.

For each framework, one process: each model is built by onespec and by the framework's zoo
(torchvision, ``paddle.vision.models``, MindCV's ``create_model``; MindSpore in PYNATIVE, or both
sides in GRAPH_MODE with ``graph``), then timed in alternating rounds (onespec, reference, onespec, ...) so that machine noise hits both alike.
Reported per model and batch: median eval-forward time, median training-step time (forward,
cross-entropy backward, SGD update) with ``train``, construction time, the peak resident memory
of construction plus one forward (each side alone in a fresh process, :func:`memory`), and the
ratio onespec / reference (< 1: onespec faster).
``fold`` adds onespec's BN-folded network (``onespec.fold``) to the eval rows.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np

from .errors import OnespecError

# onespec zoo name -> the framework zoo's constructor name (same architecture, same defaults)
REFERENCES = {
    "torch": {n: n for n in ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x0_5",
                             "shufflenet_v2_x1_0", "squeezenet1_0", "squeezenet1_1", "resnet18", "resnet50", "vgg11",
                             "vgg16", "vgg11_bn")},
    "paddle": {n: n for n in ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x0_5",
                              "shufflenet_v2_x1_0", "squeezenet1_0", "squeezenet1_1", "resnet18", "resnet50", "vgg11",
                              "vgg16")},
    "mindspore": {"mobilenet_v2": "mobilenet_v2_100", "mobilenet_v3_large": "mobilenet_v3_large_100",
                  "mobilenet_v3_small": "mobilenet_v3_small_100", "shufflenet_v2_x0_5": "shufflenet_v2_x0_5",
                  "shufflenet_v2_x1_0": "shufflenet_v2_x1_0", "squeezenet1_0": "squeezenet1_0",
                  "squeezenet1_1": "squeezenet1_1", "resnet18": "resnet18", "resnet50": "resnet50",
                  "vgg11": "vgg11", "vgg16": "vgg16"},
}
DEFAULT_MODELS = ["mobilenet_v2", "mobilenet_v3_large", "shufflenet_v2_x1_0", "squeezenet1_1", "resnet50", "vgg11"]


class BenchError(OnespecError, ValueError):
    pass


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Side:
    """One network under test: ``forward(x)`` (eval) and ``step(x, y)`` (train) callables."""
    name: str
    forward: object
    step: object
    build_s: float
    rss_mb: float


def _torch_sides(model: str, batch: int, train: bool, fold: bool, only=None):
    import torch
    import torchvision

    import onespec
    from .backends import load_backend

    be = load_backend("torch")
    spec = onespec.get_spec(model)
    sides = []

    def side(label, make):
        if only and label not in only:
            return
        r0, t0 = _rss_mb(), time.perf_counter()
        net = make()
        built = time.perf_counter() - t0
        x = torch.randn(batch, *spec.input_shape)
        net.eval()
        with torch.no_grad():
            net(x)
        rss = _rss_mb() - r0

        def forward(x=x, net=net):
            net.eval()
            with torch.no_grad():
                net(x)

        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        y = torch.randint(0, 1000, (batch,))

        def step(x=x, y=y, net=net, opt=opt):
            net.train()
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()

        sides.append(Side(label, forward, step if train else None, built, rss))

    side("onespec", lambda: be.build(spec))
    side("reference", lambda: getattr(torchvision.models, REFERENCES["torch"][model])(weights=None))
    if fold:
        def folded():
            f, st = onespec.fold(spec, onespec.init_state(spec, 0))
            net = be.build(f)
            be.load_state(net, f, st)
            return net
        side("onespec folded", folded)
    return sides


def _paddle_sides(model: str, batch: int, train: bool, fold: bool, only=None):
    import paddle
    import paddle.vision.models as zoo

    import onespec
    from .backends import load_backend

    be = load_backend("paddle")
    spec = onespec.get_spec(model)
    sides = []

    def side(label, make):
        if only and label not in only:
            return
        r0, t0 = _rss_mb(), time.perf_counter()
        net = make()
        built = time.perf_counter() - t0
        x = paddle.randn([batch, *spec.input_shape])
        net.eval()
        with paddle.no_grad():
            net(x)
        rss = _rss_mb() - r0

        def forward(x=x, net=net):
            net.eval()
            with paddle.no_grad():
                net(x)

        opt = paddle.optimizer.SGD(learning_rate=1e-3, parameters=net.parameters())
        y = paddle.randint(0, 1000, [batch])

        def step(x=x, y=y, net=net, opt=opt):
            net.train()
            loss = paddle.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            opt.clear_grad()

        sides.append(Side(label, forward, step if train else None, built, rss))

    side("onespec", lambda: be.build(spec))
    side("reference", lambda: getattr(zoo, REFERENCES["paddle"][model])())
    if fold:
        def folded():
            f, st = onespec.fold(spec, onespec.init_state(spec, 0))
            net = be.build(f)
            be.load_state(net, f, st)
            return net
        side("onespec folded", folded)
    return sides


def _mindspore_sides(model: str, batch: int, train: bool, fold: bool, graph: bool = False, only=None):
    import mindspore as ms
    from mindspore import nn
    from mindcv.models import create_model

    import onespec
    from .backends import load_backend

    be = load_backend("mindspore")
    spec = onespec.get_spec(model)
    sides = []

    def side(label, make, mode):
        if only and label not in only:
            return
        ms.set_context(mode=mode)
        r0, t0 = _rss_mb(), time.perf_counter()
        net = make()
        built = time.perf_counter() - t0
        x = ms.Tensor(np.random.default_rng(0).standard_normal((batch, *spec.input_shape)).astype(np.float32))
        net.set_train(False)
        net(x)
        rss = _rss_mb() - r0

        def forward(x=x, net=net, mode=mode):
            ms.set_context(mode=mode)
            net.set_train(False)
            net(x).asnumpy()

        loss_fn = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
        opt = nn.SGD(net.trainable_params(), learning_rate=1e-3)
        y = ms.Tensor(np.random.default_rng(1).integers(0, 1000, batch).astype(np.int32))
        train_net = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn), opt)

        def step(x=x, y=y, mode=mode):
            ms.set_context(mode=mode)
            train_net.set_train(True)
            train_net(x, y).asnumpy()

        sides.append(Side(label, forward, step if train else None, built, rss))

    mode = ms.GRAPH_MODE if graph else ms.PYNATIVE_MODE
    side("onespec", lambda: be.build(spec), mode)
    side("reference", lambda: create_model(REFERENCES["mindspore"][model], pretrained=False), mode)
    if fold:
        def folded():
            f, st = onespec.fold(spec, onespec.init_state(spec, 0))
            net = be.build(f)
            be.load_state(net, f, st)
            return net
        side("onespec folded", folded, mode)
    return sides


SIDES = {"torch": _torch_sides, "paddle": _paddle_sides, "mindspore": _mindspore_sides}
REFERENCE_NAME = {"torch": "torchvision", "paddle": "paddle.vision.models", "mindspore": "MindCV"}


def _median_time(fn, iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters


def measure(framework: str, model: str, batch: int, *, rounds: int = 5, train: bool = False,
            fold: bool = False, budget_s: float = 20.0, graph: bool = False) -> dict:
    """One model at one batch in this process's framework: per side, medians over ``rounds``
    alternating rounds (each round as many iterations as fit ``budget_s / rounds / sides``)."""
    sides = SIDES[framework](model, batch, train, fold, **({"graph": graph} if framework == "mindspore" else {}))
    row = {"framework": framework + (" graph" if graph else ""), "model": model, "batch": batch,
           "reference": REFERENCE_NAME[framework]}
    for kind in ("eval", "train") if train else ("eval",):
        fns = {s.name: (s.forward if kind == "eval" else s.step) for s in sides if (kind == "eval" or s.step)}
        if kind == "train":
            fns.pop("onespec folded", None)
        for f in fns.values():  # warm up (graph compilation, allocator)
            f()
        one = max(min(_median_time(f, 1) for f in fns.values()), 1e-4)
        iters = max(1, int(budget_s / rounds / len(fns) / one))
        times = {k: [] for k in fns}
        for _ in range(rounds):
            for k, f in fns.items():
                times[k].append(_median_time(f, iters))
        med = {k: statistics.median(v) for k, v in times.items()}
        row[kind] = {k: round(v * 1000, 3) for k, v in med.items()}  # ms
        row[f"{kind}_ratio"] = round(med["onespec"] / med["reference"], 3)
        if "onespec folded" in med:
            row["folded_speedup"] = round(med["reference"] / med["onespec folded"], 3)
    row["build_s"] = {s.name: round(s.build_s, 3) for s in sides}
    return row


def run(models, frameworks, batches, *, rounds: int = 5, train: bool = False, fold: bool = False,
        budget_s: float = 20.0, graph: bool = False, progress=None) -> list[dict]:
    """Every framework in its own child process; rows of :func:`measure`."""
    from ._proc import run_child

    for fw in frameworks:
        unknown = [m for m in models if m not in REFERENCES[fw]]
        if unknown:
            raise BenchError(f"{fw} has no zoo reference for {', '.join(unknown)}; "
                             f"benchmarkable: {', '.join(sorted(REFERENCES[fw]))}")
    rows = []
    for fw in frameworks:
        for m in models:
            for b in batches:
                if progress:
                    progress(f"[{fw}] {m} batch {b}")
                code, so, se = run_child(["-m", "onespec.bench", fw, m, str(b), str(rounds), str(int(train)),
                                          str(int(fold)), str(budget_s), str(int(graph))])
                if code != 0:
                    tail = se.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                    raise BenchError(f"{fw} {m} batch {b}: {tail[0][:500]}")
                row = json.loads(so.decode().strip().splitlines()[-1])
                row["peak_mb"] = {}
                for side in row["build_s"]:
                    code, so, se = run_child(["-m", "onespec.bench", "--memory", fw, m, str(b), side,
                                              str(int(graph))])
                    if code == 0:
                        row["peak_mb"][side] = json.loads(so.decode().strip().splitlines()[-1])["rss_mb"]
                rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    out = [f"{'framework':<10} {'model':<20} {'batch':>5} {'onespec ms':>11} {'reference ms':>13} {'ratio':>6} "
           f"{'train ratio':>11} {'folded x':>9} {'build s (onespec/ref)':>22} {'peak MB (onespec/ref)':>22}"]
    for r in rows:
        ev = r["eval"]
        tr = f"{r['train_ratio']:.2f}" if "train_ratio" in r else "-"
        fo = f"{r['folded_speedup']:.2f}" if "folded_speedup" in r else "-"
        out.append(f"{r['framework']:<10} {r['model']:<20} {r['batch']:>5} {ev['onespec']:>11.2f} "
                   f"{ev['reference']:>13.2f} {r['eval_ratio']:>6.2f} {tr:>11} {fo:>9} "
                   f"{r['build_s']['onespec']:>10.2f}/{r['build_s']['reference']:<11.2f} "
                   f"{r['peak_mb'].get('onespec', float('nan')):>10.0f}/"
                   f"{r['peak_mb'].get('reference', float('nan')):<10.0f}")
    out.append("ratio = onespec time / reference time (< 1: onespec faster); reference: torchvision, "
               "paddle.vision.models, MindCV; folded x = reference time / folded time")
    return "\n".join(out)


def memory(framework: str, model: str, batch: int, side: str, graph: bool = False) -> float:
    """Peak resident memory (MB) of building ``side`` and running one eval forward, above this
    process's after the framework's import: run in a fresh process per side, since an allocator
    keeps what an earlier network freed and the second network measured in one process looks
    smaller."""
    import resource

    import importlib
    importlib.import_module({"torch": "torch", "paddle": "paddle", "mindspore": "mindspore"}[framework])
    if framework == "torch":
        import torchvision  # noqa: F401
    elif framework == "paddle":
        import paddle.vision.models  # noqa: F401
    else:
        import mindcv.models  # noqa: F401
    base = _rss_mb()
    sides = SIDES[framework](model, batch, False, side == "onespec folded", only={side},
                             **({"graph": graph} if framework == "mindspore" else {}))
    del sides  # built and ran once inside; the peak is what it took
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return round(peak - base, 1)


def _worker(argv) -> int:
    from ._proc import child_init

    child_init()
    if argv[0] == "--memory":
        fw, model, batch, side, graph = argv[1:]
        print(json.dumps({"rss_mb": memory(fw, model, int(batch), side, bool(int(graph)))}), flush=True)
        return 0
    fw, model, batch, rounds, train, fold, budget, graph = argv
    data_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    row = measure(fw, model, int(batch), rounds=int(rounds), train=bool(int(train)), fold=bool(int(fold)),
                  budget_s=float(budget), graph=bool(int(graph)))
    data_out.write(json.dumps(row) + "\n")
    data_out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
