"""Speed of onespec's networks against the frameworks' own zoo models, and of onespec's folded
ONNX export against torchvision's own ONNX export in onnxruntime.

    python benchmarks/zoo_speed.py [--models ...] [--backends torch paddle] [--batch 1,16] [--train]
                                   [--onnx] [--fold] [--graph] [--torch-option channels_last|compile]
                                   [--rounds 5] [--budget 20] [--json out.json]

Eval forward (and with --train one SGD training step) at 224x224, one process per framework,
alternating rounds, medians; ratio = onespec / reference (target <= 1.00); folded x = reference
time / onespec folded time (target >= 1.2 at batch 16 for the conv-BN families). --onnx: both
ONNX files in onnxruntime (CPU, default session options), alternating, ratio = onespec folded /
torchvision (target <= 1.00).
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

from onespec.bench import DEFAULT_MODELS, run, table  # noqa: E402


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
            for b in batches:
                x = np.random.default_rng(0).standard_normal((b, *spec.input_shape)).astype(np.float32)
                fns = {k: (lambda s=s: s.run(None, {s.get_inputs()[0].name: x})) for k, s in sessions.items()}
                for f in fns.values():
                    f()
                t0 = time.perf_counter()
                fns["torchvision"]()
                iters = max(1, int(budget / rounds / 2 / max(time.perf_counter() - t0, 1e-4)))
                times = {k: [] for k in fns}
                for _ in range(rounds):
                    for k, f in fns.items():
                        t0 = time.perf_counter()
                        for _ in range(iters):
                            f()
                        times[k].append((time.perf_counter() - t0) / iters)
                med = {k: statistics.median(v) * 1000 for k, v in times.items()}
                rows.append({"model": m, "batch": b, "ms": med, "ratio": med["onespec folded"] / med["torchvision"]})
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
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=20.0)
    ap.add_argument("--torch-option", action="append", default=[], choices=("channels_last", "compile"))
    ap.add_argument("--graph", action="store_true", help="MindSpore in GRAPH_MODE (both sides)")
    ap.add_argument("--json")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    args.backends = [b for b in args.backends if b != "none"]
    rows = run(args.models, args.backends, batches, rounds=args.rounds, train=args.train, fold=args.fold,
               budget_s=args.budget, graph=args.graph, torch_options=args.torch_option,
               progress=lambda m: print(m, file=sys.stderr, flush=True)) if args.backends else []
    if rows:
        print(table(rows))
    onnx = onnx_rows(args.models, batches, args.rounds, args.budget) if args.onnx else []
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"frameworks": rows, "onnxruntime": onnx}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
