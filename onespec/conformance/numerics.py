"""Numerical conformance: same weights, same numbers.

Every framework's eval-mode output, with ``init_state(spec, seed)`` loaded (BN statistics
calibrated on the seeded batch, see ``onespec.conformance.calibration``), is compared with the
numpy reference evaluator (float64) relative to the output's scale. One plain-SGD training
step (train mode, dropout disabled so all frameworks see the same function) must update
parameters and BN running statistics identically across frameworks.
"""
from __future__ import annotations

import numpy as np

from ..spec import ModelSpec

NUMERIC_RTOL = 1e-4   # max |y - ref| / max |ref|, float32 frameworks vs float64 reference
TRAIN_LR = 0.1
TRAIN_BATCH = 4
# One train-mode step through deep BN stacks at batch 4 is ill-conditioned in float32 (BN's
# backward subtracts near-equal terms): torch float32 vs torch float64 alone differs by 3.2e-3
# over all of resnet50's parameter update and 5.4e-3 on its worst tensor (relative L2; 1.8e-2 and
# 2.2e-2 before calibration damped residual bodies), resnet152's update differs by 1.3e-2 across
# frameworks, and MindSpore's CPU conv backward differs from torch by 8.8e-2 on MicroNet's
# stem.bn1.bias, a near-zero gradient (paddle vs torch: 3.7e-3). A wrong rule (learning-rate
# scale, sign, a gradient convention) is off by O(1); running statistics depend on the forward
# only and are held to 1e-3, which a wrong momentum or variance convention misses by 10x or more.
TRAIN_PARAM_RTOL = 5e-2
TRAIN_TENSOR_RTOL = 2e-1
TRAIN_STATE_RTOL = 1e-3


def rel_err(y, ref) -> float:
    """max |y - ref| / max |ref|; for a network's several outputs (tuples) the worst output's."""
    if isinstance(y, tuple) or isinstance(ref, tuple):
        if not (isinstance(y, tuple) and isinstance(ref, tuple) and len(y) == len(ref)):
            return float("inf")
        return max(rel_err(a, b) for a, b in zip(y, ref))
    if y.shape != ref.shape:
        return float("inf")
    return float(np.abs(y.astype(np.float64) - ref).max() / max(float(np.abs(ref).max()), 1e-12))


def without_dropout(spec: ModelSpec) -> ModelSpec:
    """The same network with every dropout's p = 0 (dropout masks are framework RNG streams)."""
    def strip(node):
        if isinstance(node, dict):
            if node.get("op") == "dropout":
                return {**node, "p": 0.0}
            return {k: strip(v) for k, v in node.items()}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node
    return ModelSpec.model_validate(strip(spec.model_dump()))


def configurations(spec: ModelSpec) -> set[tuple]:
    """What a compiler sees of ``spec`` apart from sizes: each node's op with its string and
    boolean options (activation, merge, ceil_mode, ...) and each integer option reduced to 0, 1 or
    more (no padding / padding, stride 1 / strided, groups 1 / grouped, ...), where emitters branch.
    Two models with the same configurations trace through the same emitted code paths."""
    out: set[tuple] = set()

    def cls(v):
        if isinstance(v, bool) or isinstance(v, str):
            return v
        if isinstance(v, int):
            return min(v, 2)
        if isinstance(v, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in v):
            return tuple(min(i, 2) for i in v)
        return None  # floats (eps, momentum, slopes) and children: not a code path

    def visit(node):
        if isinstance(node, dict):
            if "op" in node:
                opts = tuple(sorted((k, c) for k, v in node.items()
                                    if k not in ("op", "name") and (c := cls(v)) is not None))
                out.add((node["op"], *opts))
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)
    visit(spec.model_dump())
    return out


def cost(spec: ModelSpec) -> float:
    """What checking ``spec`` in every framework costs, roughly: its node count (compile and
    MindSpore PYNATIVE gradient time follow it) plus MACs / 1e7."""
    from ..spec import analyze

    a = analyze(spec)
    return len(a.rows) + a.macs / 1e7


def distinct(specs: dict[str, ModelSpec]) -> list[str]:
    """A cheap few of ``specs``' labels whose networks together hold every configuration
    (:func:`configurations`) that any of them holds: the models whose compiled programs must be
    checked so that every emitted module's code is traced by the compiler at least once.
    Weighted greedy set cover: the model adding most new configurations per unit of
    :func:`cost`, then models the others already cover are dropped."""
    confs = {name: configurations(s) for name, s in specs.items()}
    costs = {name: cost(s) for name, s in specs.items()}
    seen: set[tuple] = set()
    chosen: list[str] = []
    while True:
        left = [n for n in confs if confs[n] - seen]
        if not left:
            break
        name = max(left, key=lambda n: (len(confs[n] - seen) / costs[n], -costs[n]))
        chosen.append(name)
        seen |= confs[name]
    for name in sorted(chosen, key=lambda n: -costs[n]):  # the dearest redundant ones first
        rest = set().union(*(confs[m] for m in chosen if m != name))
        if confs[name] <= rest:
            chosen.remove(name)
    return [n for n in specs if n in chosen]


def train_inputs(spec: ModelSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Batch x and loss weights r (loss = sum(net(x) * r)) for the training-step check."""
    rng = np.random.default_rng([seed, 1])
    x = rng.standard_normal((TRAIN_BATCH, *spec.input_shape)).astype(np.float32)
    r = rng.standard_normal((TRAIN_BATCH, *spec.output_shape)).astype(np.float32)
    return x, r


def update_errors(init: dict, states: dict[str, dict]) -> dict[str, dict]:
    """Per framework, against every other framework: relative L2 error of the whole parameter
    update, worst per-tensor update error (floored at 1e-3 x the largest update, so a tensor
    whose gradient is ~0 does not compare noise with noise), worst running-statistic error."""
    params = [k for k in init if not k.endswith(("running_mean", "running_var"))]
    stats = set(init) - set(params)
    # each framework's update, once (VGG-sized states make these the costly part)
    deltas = {fw: {k: st[k].astype(np.float64) - init[k] for k in init} for fw, st in states.items()}
    out = {}
    for fw, d in deltas.items():
        err = {"param": 0.0, "tensor": 0.0, "state": 0.0}
        worst = ""
        for other, d_ref in deltas.items():
            if other == fw:
                continue
            total = np.sqrt(sum(np.sum((d[k] - d_ref[k]) ** 2) for k in params))
            err["param"] = max(err["param"], float(total / (np.sqrt(sum(np.sum(d_ref[k] ** 2) for k in params)) + 1e-30)))
            floor = 1e-3 * max((float(np.abs(d_ref[k]).max()) for k in init if d_ref[k].size), default=0.0)
            for k in init:
                e = float(np.linalg.norm(d[k] - d_ref[k]) / (np.linalg.norm(d_ref[k]) + floor + 1e-30))
                kind = "state" if k in stats else "tensor"
                if e > err[kind]:
                    err[kind] = e
                    worst = k if kind == "tensor" else worst
        out[fw] = {"train_param_err": err["param"], "train_tensor_err": err["tensor"], "train_state_err": err["state"],
                   "train_worst": worst, "train_ok": (err["param"] <= TRAIN_PARAM_RTOL and err["tensor"] <= TRAIN_TENSOR_RTOL
                                                      and err["state"] <= TRAIN_STATE_RTOL)}
    return out


# Candidate input sizes for a quicker run, smallest first.
SMALL_SIZES = (32, 48, 64, 96, 112, 128, 160, 192)


def cases(spec: ModelSpec) -> list[tuple]:
    """What an input size can change about a model's ops: for every pool, whether ceil mode adds
    a window; for every adaptive pool, whether each dim shrinks, stays or grows and whether it
    divides evenly; for every conv, pool and upsample, whether its input and output are 1, 2 or
    at least 3 pixels wide (padding-only windows; and below 3x3 the calibrated test weights'
    statistics come from so few pixels that float32 rounding alone reaches 1e-4: ShuffleNet V2
    at 48 and 64 px, MicroNet M3 at 64). Two sizes with equal ``cases`` exercise the same code
    paths in every backend."""
    from ..spec import trace

    out = []
    for r in trace(spec):
        if r.op in ("maxpool", "avgpool"):
            out.append((r.path, r.node.effective_ceil(r.in_shape), min(r.out_shape[1:] + (3,))))
        elif r.op == "adaptive_avgpool":
            out.append((r.path, tuple((i > o) - (i < o) for i, o in zip(r.in_shape[1:], r.out_shape[1:])),
                        tuple(i % o == 0 for i, o in zip(r.in_shape[1:], r.out_shape[1:]))))
        elif r.op in ("conv", "conv_transpose", "upsample", "global_avgpool"):
            out.append((r.path, min(r.in_shape[1:] + (3,)), min(r.out_shape[1:] + (3,))))
    return out


# A model above this many parameters (VGG: 120M of its 138M in the classifier) runs at a quarter
# width: the same ops, layers and shapes, a quarter of the channels (and of the first Linear).
SMALL_PARAMS = 100_000_000


def small_overrides(name: str, overrides: dict | None = None) -> dict:
    """Overrides giving ``name`` the smallest input size in ``SMALL_SIZES`` with the same
    ``cases`` as its default size, and a quarter width above ``SMALL_PARAMS`` parameters
    (unchanged where the model takes no such override or none keeps the cases)."""
    from ..spec import analyze
    from ..zoo import entry, get_spec

    overrides = dict(overrides or {})
    accepted = entry(name).accepted()
    if ("width" in accepted and "width" not in overrides
            and analyze(get_spec(name, **overrides)).params > SMALL_PARAMS):
        overrides["width"] = 0.25
    if "input_size" in overrides or "input_size" not in accepted:
        return overrides
    spec = get_spec(name, **overrides)
    want = cases(spec)
    default = spec.input_shape[-1]
    for size in SMALL_SIZES:
        if size >= default:
            break
        try:
            small = get_spec(name, **overrides, input_size=size)
        except Exception:  # too small for this architecture
            continue
        if cases(small) == want:
            return {**overrides, "input_size": size}
    return overrides
