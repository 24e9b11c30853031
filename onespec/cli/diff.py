"""``diff``: the first node whose output differs from the float64 reference."""
from __future__ import annotations

import json
import os

from .common import MODEL_HELP, add_set, resolve


def _state(spec, args):
    if not args.weights:
        return None
    from ..conformance.diff import DiffError
    from ..convert import read_for
    state, skipped, missing, _ = read_for(spec, args.weights, here=args.backend)
    if skipped or missing:
        raise DiffError(f"{args.weights} does not fit {spec.name}: "
                        + ", ".join((skipped + missing)[:5]) + f" ({len(skipped + missing)} tensors)")
    return state


def _foreign(spec, args) -> int:
    from ..conformance.diff import DiffError, diff_foreign
    from ..models import ModelError, load_code

    build = load_code(args.foreign, "--foreign")
    try:
        net = build()
    except Exception as err:  # the user's function, named in one line
        raise ModelError(f"--foreign {args.foreign}() raised {type(err).__name__}: {err}") from err
    names = None
    if args.map:
        with open(args.map) as f:
            names = json.load(f)
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise DiffError(f"{args.map}: a name map is a JSON object of canonical name -> its name")
    rep = diff_foreign(spec, net, args.backend, tensor_map=names, seed=args.seed)
    print(rep.table())
    return 0 if rep.ok else 1


def cmd_diff(args) -> int:
    from ..conformance.diff import diff, replay
    from ..errors import OverrideError

    if args.replay:
        ok, err = replay(args.replay, args.backend)
        print(f"{args.replay} in {args.backend}: relative error {err:.2e} vs the float64 reference: "
              + ("within tolerance" if ok else "MISMATCH reproduced"))
        return 0 if ok else 1
    if not args.model:
        raise OverrideError("onespec diff needs a MODEL (or --replay DIR)")
    spec = resolve(args.model, args.set)
    state = _state(spec, args)
    if args.foreign:
        return _foreign(spec, args)
    out = args.out or f"diff-{spec.name}-{args.backend}"
    rep = diff(spec, args.backend, state=state, seed=args.seed, mode=args.mode, backward=args.backward, out=out)
    print(rep.table())
    print(f"wrote {os.path.join(out, 'diff.json')} and diff.txt")
    return 0 if rep.ok else 1


def register(sub, frameworks) -> None:
    p = sub.add_parser("diff", help="the first node whose output differs from the float64 reference, with a "
                                    "one-node reproducer")
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--backend", default="paddle", choices=frameworks)
    p.add_argument("--weights", help="the state to compare with (default: init_state(spec, seed)); any format "
                                     "onespec convert reads, fitting the model exactly")
    add_set(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for diff.json, diff.txt and the reproducer")
    p.add_argument("--replay", metavar="DIR", help="run a reproducer written by onespec diff")
    p.add_argument("--mode", choices=("eval", "train"), default="eval",
                   help="forward in eval mode (numpy float64 reference) or train mode (batch statistics, running-"
                        "statistics updates; torch float64 reference)")
    p.add_argument("--backward", action="store_true",
                   help="also compare every node's input and parameter gradients (torch float64 autograd reference)")
    p.add_argument("--foreign", metavar="MODULE:FUNCTION",
                   help="compare your own network instead (a function of no arguments returning it, weights loaded; "
                        "module:function or path/to/file.py:function, runs that code) node by node")
    p.add_argument("--map", metavar="JSON", help="with --foreign: canonical tensor name -> your network's name "
                                                 "(default: the model's torchvision names)")
    p.set_defaults(fn=cmd_diff)
