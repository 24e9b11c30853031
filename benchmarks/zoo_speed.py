"""Speed of onespec's networks against the frameworks' own zoo models, and of onespec's folded
ONNX export against torchvision's own ONNX export in onnxruntime.

    python benchmarks/zoo_speed.py [--models ...] [--backends torch paddle] [--batch 1,16] [--train]
                                   [--onnx] [--paddle-inference] [--fold] [--ms-mode M]
                                   [--torch-option channels_last|compile]
                                   [--rounds 5] [--budget 20] [--json out.json]

Eval forward (and with --train one SGD training step) at 224x224, one process per framework,
alternating rounds, medians; ratio = onespec / reference (target <= 1.00); folded x = reference
time / onespec folded time (target >= 1.2 at batch 16 for the conv-BN families). --onnx: both
ONNX files in onnxruntime (CPU, default session options), alternating, ratio = onespec folded /
torchvision (target <= 1.00), with whether the graphs onnxruntime runs after its own
optimizations are the same (op types and counts). --paddle-inference: onespec's folded network and paddle.vision's
model in Paddle Inference with oneDNN, and x = paddle.vision eager / onespec folded in Paddle
Inference. --fold with --torch-option: the folded network with the option too (torchvision's model
gets each option as well).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from onespec.bench import DEFAULT_MODELS, MS_MODES, TORCH_OPTIONS, run, table  # noqa: E402


def alternate(fns: dict, rounds: int, budget: float) -> dict:
    """Median milliseconds per call of each callable, timed in alternating rounds."""
    for f in fns.values():
        f()
    t0 = time.perf_counter()
    next(iter(fns.values()))()
    iters = max(1, int(budget / rounds / len(fns) / max(time.perf_counter() - t0, 1e-4)))
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(iters):
                f()
            times[k].append((time.perf_counter() - t0) / iters)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def paddle_inference_rows(models, batches, rounds: int, budget: float) -> list[dict]:
    """onespec's folded network and paddle.vision's model, each saved by ``paddle.jit.save`` (what
    ``onespec export --format paddle --fold`` writes) and run by a Paddle Inference predictor with
    oneDNN (which fuses conv + BN + activation itself), beside paddle.vision's model in eager."""
    import numpy as np
    import paddle
    import paddle.inference as pi
    import paddle.vision.models as zoo

    import onespec
    from onespec.backends import load_backend

    be = load_backend("paddle")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for m in models:
            spec = onespec.get_spec(m)
            f, st = onespec.fold(spec, onespec.init_state(spec, 0))
            mine = be.build(f)
            be.load_state(mine, f, st)
            ref = getattr(zoo, m)()
            predictors = {}
            for k, net in (("onespec folded", mine), ("paddle.vision", ref)):
                net.eval()
                prefix = os.path.join(d, f"{m}-{k.split()[0]}")
                paddle.jit.save(net, prefix, input_spec=[paddle.static.InputSpec([None, *spec.input_shape],
                                                                                  "float32", "input")])
                cfg = pi.Config(prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel"),
                                prefix + ".pdiparams")
                cfg.disable_gpu()
                cfg.enable_mkldnn()
                predictors[k] = pi.create_predictor(cfg)

            def run(p, x):
                h = p.get_input_handle(p.get_input_names()[0])
                h.reshape(x.shape)
                h.copy_from_cpu(x)
                p.run()
                return p.get_output_handle(p.get_output_names()[0]).copy_to_cpu()

            for b in batches:
                x = np.random.default_rng(0).standard_normal((b, *spec.input_shape)).astype(np.float32)
                xt = paddle.to_tensor(x)
                fns = {k: (lambda p=p: run(p, x)) for k, p in predictors.items()}
                fns["paddle.vision eager"] = lambda: ref(xt)
                with paddle.no_grad():
                    med = alternate(fns, rounds, budget)
                rows.append({"model": m, "batch": b, "ms": med,
                             "ratio": med["onespec folded"] / med["paddle.vision"],
                             "speedup_vs_eager": med["paddle.vision eager"] / med["onespec folded"]})
                print(f"paddle inference {m:<20} batch {b:>3}: onespec folded {med['onespec folded']:8.2f} ms, "
                      f"paddle.vision {med['paddle.vision']:8.2f} ms, ratio {rows[-1]['ratio']:.2f}; "
                      f"paddle.vision eager {med['paddle.vision eager']:8.2f} ms, folded x "
                      f"{rows[-1]['speedup_vs_eager']:.2f}", flush=True)
    return rows


def optimized_ops(path: str, tmp: str) -> dict:
    """{op type: count} of the graph onnxruntime runs for ``path`` on the CPU (after its graph
    optimizations: BN folded into Conv, activations fused), for telling a graph difference from noise."""
    import collections

    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
    so.log_severity_level = 3  # not the warning that the saved graph is for this machine only
    ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return dict(sorted(collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node).items()))


def _hist(ops: dict) -> str:
    return ", ".join(f"{n} {k}" for k, n in ops.items())


def onnx_rows(models, batches, rounds: int, budget: float) -> list[dict]:
    import numpy as np
    import onnxruntime as ort
    import torch
    import torchvision

    import onespec
    from onespec.export import export

    rows = []
    with tempfile.TemporaryDirectory() as d:
        for m in models:
            spec = onespec.get_spec(m)
            net = getattr(torchvision.models, m)(weights=None).eval()
            ref = os.path.join(d, f"{m}-tv.onnx")
            torch.onnx.export(net, (torch.zeros(1, *spec.input_shape),), ref, input_names=["input"],
                              output_names=["output"], opset_version=18, dynamo=True, external_data=False,
                              dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},))
            from onespec.importers import from_torchvision
            state = from_torchvision(spec, {k: v.numpy() for k, v in net.state_dict().items()})
            mine = os.path.join(d, f"{m}-onespec.onnx")
            export(spec, state, "onnx", mine, fold=True, check=False)
            sessions = {k: ort.InferenceSession(p, providers=["CPUExecutionProvider"])
                        for k, p in (("onespec folded", mine), ("torchvision", ref))}
            ops = {k: optimized_ops(p, d) for k, p in (("onespec folded", mine), ("torchvision", ref))}
            same = ops["onespec folded"] == ops["torchvision"]
            print(f"onnxruntime {m}: the graphs it runs (after its optimizations) "
                  + ("are the same: " + _hist(ops["torchvision"]) if same else
                     f"differ: onespec {_hist(ops['onespec folded'])}; torchvision {_hist(ops['torchvision'])}"),
                  flush=True)
            for b in batches:
                x = np.random.default_rng(0).standard_normal((b, *spec.input_shape)).astype(np.float32)
                fns = {k: (lambda s=s: s.run(None, {s.get_inputs()[0].name: x})) for k, s in sessions.items()}
                med = alternate(fns, rounds, budget)
                rows.append({"model": m, "batch": b, "ms": med, "ratio": med["onespec folded"] / med["torchvision"],
                             "same_optimized_graph": same, "optimized_ops": ops})
                print(f"onnxruntime {m:<20} batch {b:>3}: onespec folded {med['onespec folded']:8.2f} ms, "
                      f"torchvision {med['torchvision']:8.2f} ms, ratio {rows[-1]['ratio']:.2f}", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--backends", nargs="+", default=["torch", "paddle"], help="'none': only --onnx")
    ap.add_argument("--batch", default="1,16")
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--fold", action="store_true")
    ap.add_argument("--onnx", action="store_true")
    ap.add_argument("--paddle-inference", action="store_true",
                    help="folded onespec vs paddle.vision in Paddle Inference (oneDNN), and vs paddle.vision eager")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--torch-option", action="append", default=[], choices=TORCH_OPTIONS)
    ap.add_argument("--ms-mode", default="pynative", choices=MS_MODES,
                    help="MindSpore: PYNATIVE (onespec's network synchronous on CPU), PYNATIVE synchronized "
                         "for both sides, or GRAPH_MODE")
    ap.add_argument("--json")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    args.backends = [b for b in args.backends if b != "none"]
    rows = run(args.models, args.backends, batches, rounds=args.rounds, train=args.train, fold=args.fold,
               budget_s=args.budget, ms_mode=args.ms_mode, torch_options=args.torch_option,
               progress=lambda m: print(m, file=sys.stderr, flush=True)) if args.backends else []
    if rows:
        print(table(rows))
    onnx = onnx_rows(args.models, batches, args.rounds, args.budget) if args.onnx else []
    inference = paddle_inference_rows(args.models, batches, args.rounds, args.budget) if args.paddle_inference else []
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"frameworks": rows, "onnxruntime": onnx, "paddle_inference": inference}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
