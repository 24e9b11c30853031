"""The ``codegen`` and ``port`` subcommands (registered by ``onespec.cli``)."""
from __future__ import annotations

import os

from ..backends import frameworks


def _spec(model: str, overrides: dict):
    from ..models import resolve
    return resolve(model, overrides, origin="--set")


def cmd_codegen(args, overrides) -> int:
    from . import codegen
    spec = _spec(args.model, overrides)
    text = codegen(spec, args.backend)
    from ..weights import atomic_write

    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)
    atomic_write(args.output, write, suffix=".py")
    print(f"{spec.name} -> {args.output} ({args.backend}, {len(text.splitlines())} lines)")
    return 0


def cmd_port(args, overrides) -> int:
    from ..port import PortError, port
    captured = None
    if args.input_shape:  # SOURCE is MODULE:FUNCTION returning a framework's model: captured first
        from ..capture import capture
        from ..capture.command import _shape, load_target
        given = [f for f, v in (("--weights", args.weights), ("--set", overrides)) if v]
        if given:
            raise PortError(f"a captured model brings its own weights and structure: drop {' and '.join(given)}")
        module = load_target(args.source)
        spec, state = capture(module, _shape(args.input_shape))
        captured = (state, module)
    else:
        spec = _spec(args.source, overrides)
    report = port(spec, args.to, args.output, args.weights, args.input, source_name=args.source, captured=captured)
    for r in report["rows"]:
        print(f"{r['output']:<34} vs {r['against']:<48} {r['max_rel_err']:.2e} "
              f"{'ok' if r['ok'] else 'FAILED'}")
    if not report["ok"]:
        print(f"port failed: only {os.path.join(args.output, 'port-report.md')} was written")
        return 1
    print(f"{spec.name} ported to {args.to}: {args.output}/model.py, weights, README.md, port.json")
    return 0


def add_parsers(sub, overrides) -> None:
    """``overrides(list_of_KEY=VALUE)`` parses ``--set`` as every command does."""
    FRAMEWORKS = frameworks()  # built-in and registered (ONESPEC_BACKENDS)
    p = sub.add_parser("codegen", help="one self-contained, readable source file of a model for a framework")
    p.add_argument("model", help="zoo name, spec file or module:function")
    p.add_argument("--backend", required=True, choices=FRAMEWORKS)
    p.add_argument("-o", "--output", required=True, help="the .py file to write")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. --set num_classes=10")
    p.set_defaults(fn=lambda a: cmd_codegen(a, overrides(a.set)))
    p = sub.add_parser("port", help="checkpoint + generated source for a framework, proven equal, in a directory")
    p.add_argument("source", help="zoo name, spec file or module:function")
    p.add_argument("--to", required=True, choices=FRAMEWORKS)
    p.add_argument("--weights", help="checkpoint (torchvision state dict, any framework's, canonical)")
    p.add_argument("--input", help="a .npy input to check on (default: a random example input)")
    p.add_argument("--input-shape", metavar="C,H,W", help="SOURCE is MODULE:FUNCTION returning a model "
                   "(a torch.nn.Module, paddle.nn.Layer or mindspore.nn.Cell): capture it at this input shape first")
    p.add_argument("-o", "--output", required=True, help="directory to write")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. --set num_classes=10")
    p.set_defaults(fn=lambda a: cmd_port(a, overrides(a.set)))
