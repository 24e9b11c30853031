"""``conformance``: build models in every framework and check them against the spec."""
from __future__ import annotations

import json
import os
import sys

from .common import add_backends, add_set, model_sets

MODES = {"all": True, "none": False, "distinct": "distinct"}


def _specs(models: list[str], overrides: dict, small: bool) -> tuple[dict, dict]:
    """({label: ModelSpec}, {label: overrides}) of zoo names and globs (all when none), spec files
    and module:function; ``small`` sizes zoo models only (a spec file is run as written)."""
    from ..conformance import select
    from ..conformance.numerics import small_overrides
    from ..models import kind, resolve

    zoo = [m for m in models if kind(m) == "zoo"]
    names = select(zoo) if zoo or not models else []
    per_model = {n: small_overrides(n, overrides) if small else dict(overrides) for n in names}
    specs = {n: resolve(n, ov, origin="--set") for n, ov in per_model.items()}
    for m in models:
        if m not in zoo:
            specs[m] = resolve(m, overrides, origin="--set")
            per_model[m] = dict(overrides)
    return specs, per_model


def cmd_conformance(args) -> int:
    from ..conformance import run_specs

    # every model resolved, and every override checked, before any framework starts
    specs, per_model = _specs(args.models, model_sets(args.set), args.small)
    static = False if args.no_static else MODES[args.compile]
    report = run_specs(specs, args.backends, batch=args.batch, seed=args.seed, static=static, numerics=args.numerics,
                       diff_dir=None if args.no_diff else args.diff_dir, step=MODES[args.step],
                       progress=lambda m: print(m, file=sys.stderr, flush=True))
    for r in report.results:
        r["overrides"] = per_model[r["model"]]
    print(report.table())
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report.to_dict(), f, indent=1)
        os.replace(tmp, args.json)  # never leave a half-written report
    return 0 if report.ok else 1


def register(sub, frameworks) -> None:
    p = sub.add_parser("conformance", help="build every model in every framework and check it against the spec")
    p.add_argument("models", nargs="*", help="zoo names or glob patterns (default: all), spec files, module:function")
    add_backends(p, frameworks, frameworks)
    p.add_argument("--json", metavar="PATH", help="write the report as JSON")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-static", action="store_true", help="skip torch.export / to_static / GRAPH_MODE runs")
    p.add_argument("--compile", choices=tuple(MODES), default="all",
                   help="which models' compiled programs (torch.export / to_static / GRAPH_MODE) run: all, none, or "
                        "distinct: the fewest models holding every op configuration of the selection")
    p.add_argument("--step", choices=tuple(MODES), default="all",
                   help="with --numerics: which models take the one-SGD-step comparison (as --compile)")
    add_set(p, "model option for every selected model, e.g. --set num_classes=10")
    p.add_argument("--small", action="store_true",
                   help="each zoo model at the smallest input size (32-192) whose pools, adaptive pools and convs "
                        "take the same cases as at its default size (ceil-mode windows, 1x1 outputs, up/down sampling)")
    p.add_argument("--numerics", action="store_true",
                   help="also load init_state(spec, seed) everywhere, compare outputs with the numpy reference "
                        "and one SGD training step across frameworks")
    p.add_argument("--diff-dir", default="conformance-diff",
                   help="with --numerics: where onespec diff reports each numerical failure (default %(default)s)")
    p.add_argument("--no-diff", action="store_true", help="with --numerics: do not run onespec diff on failures")
    p.set_defaults(fn=cmd_conformance)
