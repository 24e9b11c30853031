"""``bench``: onespec's networks against the framework's own zoo models, side by side."""
from __future__ import annotations

import json
import sys

from .common import add_backends


def cmd_bench(args) -> int:
    from ..bench import DEFAULT_MODELS, run, table

    models = args.models or DEFAULT_MODELS
    batches = [int(b) for b in args.batch.split(",")]
    rows = run(models, args.backends, batches, rounds=args.rounds, train=args.train, fold=args.fold,
               budget_s=args.budget, ms_mode=args.ms_mode, progress=lambda m: print(m, file=sys.stderr, flush=True),
               torch_options=args.torch_option or ())
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


def register(sub, frameworks) -> None:
    from ..bench import MS_MODES, TORCH_OPTIONS

    p = sub.add_parser("bench", help="onespec's networks against the framework's own zoo models, side by side")
    p.add_argument("models", nargs="*", help="zoo names (default: mobilenet_v2 mobilenet_v3_large shufflenet_v2_x1_0 "
                                             "squeezenet1_1 resnet50 vgg11); a spec file or module:function is "
                                             "timed alone (no zoo counterpart)")
    add_backends(p, frameworks, ["torch", "paddle"])
    p.add_argument("--batch", default="1,16", help="comma-separated batch sizes (default %(default)s)")
    p.add_argument("--train", action="store_true", help="also time a training step (forward, backward, SGD)")
    p.add_argument("--fold", action="store_true", help="also time onespec's BN-folded network (eval)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians)")
    p.add_argument("--budget", type=float, default=20.0, help="seconds of timing per model, batch and mode")
    p.add_argument("--ms-mode", default="pynative", choices=MS_MODES,
                   help="MindSpore: PYNATIVE (default; onespec's network runs its own calls synchronously on "
                        "CPU), PYNATIVE with pynative_synchronize for both sides (no launch queue; faster and "
                        "steadier on few cores), or GRAPH_MODE")
    p.add_argument("--torch-option", action="append", choices=TORCH_OPTIONS,
                   help="also time onespec's torch network built with this option (repeatable; compile needs "
                        "a C++ compiler and compiles for ~30 s per model)")
    p.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    p.set_defaults(fn=cmd_bench)
