"""``convert``: checkpoints between frameworks, canonical files and model libraries."""
from __future__ import annotations

import json

from .common import MODEL_HELP, add_set, model_sets


def cmd_convert(args) -> int:
    from ..convert import convert

    src_layout, needed = convert(args.src, args.arch, args.to, args.output, args.from_, model_sets(args.set))
    print(f"{args.src} ({src_layout}) -> {args.output} ({args.to})")
    if needed:
        opts = " ".join(f"--set {k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in needed.items())
        print(f"{src_layout}'s {args.arch} needs model options {needed}: the file fits {args.arch} built with {opts}")
    return 0


def register(sub) -> None:
    from ..convert import FORMATS, WRITABLE

    p = sub.add_parser("convert", help="convert a checkpoint between torch, paddle, mindspore and canonical files, "
                                       "or import one from torchvision, timm, PaddleClas, MindCV or the MindSpore model zoo")
    p.add_argument("src")
    p.add_argument("--arch", required=True, metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--from", dest="from_", choices=FORMATS,
                   help="source library or framework (a framework, or none: the framework from the extension and "
                        "the layout -- onespec's or a library's of that framework -- from the keys; onespec: "
                        "onespec's own names only; mindspore_zoo: the MindSpore model zoo's backbone + head)")
    p.add_argument("--to", required=True, choices=WRITABLE)
    p.add_argument("-o", "--output", required=True)
    add_set(p)
    p.set_defaults(fn=cmd_convert)
