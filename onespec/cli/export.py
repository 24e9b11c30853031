"""``export``: a deployable artifact, checked in its runtime against the numpy reference."""
from __future__ import annotations

import sys

from .common import MODEL_HELP, add_set, resolve


def cmd_export(args) -> int:
    from ..export import ExportError, check_destination, check_options, export

    check_destination(args.format, args.output)  # before the model and weights are read
    check_options(args.batch, args.opset)
    spec = resolve(args.model, args.set)
    if args.weights:
        from ..convert import read_for
        state, skipped, missing, _ = read_for(spec, args.weights, here="numpy")
        if skipped or missing:
            raise ExportError(f"{args.weights} does not fit {spec.name}: "
                              + ", ".join((skipped + missing)[:5]) + f" ({len(skipped + missing)} tensors)")
    else:
        from ..weights import init_state
        state = init_state(spec, args.seed)
        print(f"note: no --weights: exporting {spec.name} with init_state(seed={args.seed}) weights", file=sys.stderr)
    rep = export(spec, state, args.format, args.output, fold=args.fold, check=not args.no_check, batch=args.batch,
                 opset=args.opset)
    print(rep.line())
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="a deployable artifact (ONNX, MindIR, Paddle inference, torch .pt2), checked "
                                      "by running it in its runtime against the numpy reference")
    p.add_argument("model", help=MODEL_HELP)
    p.add_argument("--weights", help="checkpoint (any format onespec convert reads) fitting the model exactly")
    from ..export import formats

    p.add_argument("--format", required=True, choices=sorted(formats()),
                   help="onnx: from torch; onnx-paddle: from paddle via paddle2onnx; mindir: MindSpore; paddle: "
                        "Paddle inference model (OUT.json + OUT.pdiparams); torch-export: ExportedProgram (.pt2)")
    p.add_argument("-o", "--output", required=True, help="artifact path (for --format paddle: a path prefix)")
    p.add_argument("--fold", action="store_true", help="export the BN-folded form (onespec.fold)")
    p.add_argument("--no-check", action="store_true", help="do not run the artifact in its runtime")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default %(default)s)")
    p.add_argument("--batch", type=int, default=2, help="batch the artifact is traced and checked with")
    p.add_argument("--seed", type=int, default=0)
    add_set(p)
    p.set_defaults(fn=cmd_export)
