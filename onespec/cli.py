"""``onespec`` command line: list, show, schema, conformance, convert, train, eval, align, diff, export, bench. A thin layer over
the library."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import analyze, get_spec, list_models
from .errors import OverrideError
from .backends import VERBOSE_ENV, frameworks
from .bench import MS_MODES, TORCH_OPTIONS
from .convert import FORMATS, WRITABLE
from .errors import OnespecError
from .spec import ModelSpec
from .zoo import entry

FRAMEWORKS = frameworks()  # built-in and registered (ONESPEC_BACKENDS)


def _value(text: str) -> Any:
    """A JSON value (``10``, ``0.25``, ``false``, ``[1, 2]``), Python's ``True`` / ``False``, or
    else the text itself (``same``)."""
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs or []:
        key, sep, val = pair.partition("=")
        if not sep:
            raise OverrideError(f"override {pair!r} is not KEY=VALUE")
        v = _value(val)
        out[key] = tuple(v) if isinstance(v, list) else v
    return out


def _fmt_shape(s) -> str:
    return "x".join(map(str, s))


def cmd_list(args) -> int:
    rows = [("model", "params", "MACs", "description")]
    for name in list_models():
        a = analyze(name)
        rows.append((name, f"{a.params:,}", f"{a.macs / 1e6:,.1f}M", entry(name).summary))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]}")
    return 0


def cmd_show(args) -> int:
    spec = get_spec(args.name, **_overrides(args.set))
    a = analyze(spec)
    if args.json:
        print(json.dumps({**a.to_dict(), "spec": spec.model_dump(mode="json")}, indent=1))
        return 0
    print(f"{spec.name}  ({spec.meta.paper})  input {_fmt_shape(spec.input_shape)}")
    rows = [("node", "op", "output", "params", "MACs")]
    for r in a.rows:
        rows.append(("  " * r.depth + r.path.rsplit(".", 1)[-1], r.op, _fmt_shape(r.out_shape),
                     f"{r.params:,}" if r.params else "", f"{r.macs:,}" if r.macs else ""))
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}  {r[4]:>{w[4]}}")
    print(f"total: {a.params:,} trainable params, {a.state:,} non-trainable state (BN running stats), "
          f"{a.macs:,} MACs ({a.macs / 1e6:,.1f}M), output {_fmt_shape(a.output_shape)}")
    return 0


def cmd_schema(args) -> int:
    print(json.dumps(ModelSpec.model_json_schema(), indent=1))
    return 0


def cmd_conformance(args) -> int:
    from .conformance import run, select

    models = select(args.models)
    overrides = _overrides(args.set)
    for name in models:  # fail fast, before any framework starts, on an override a model rejects
        get_spec(name, **overrides)
    static = False if args.no_static else {"all": True, "none": False, "distinct": "distinct"}[args.compile]
    report = run(models, args.backends, batch=args.batch, seed=args.seed, static=static,
                 overrides=overrides, numerics=args.numerics, small=args.small,
                 diff_dir=None if args.no_diff else args.diff_dir,
                 step={"all": True, "none": False, "distinct": "distinct"}[args.step], progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(report.table())
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report.to_dict(), f, indent=1)
        os.replace(tmp, args.json)  # never leave a half-written report
    return 0 if report.ok else 1


def cmd_convert(args) -> int:
    from .convert import convert

    src_layout, needed = convert(args.src, args.arch, args.to, args.output, args.from_, _overrides(args.set))
    print(f"{args.src} ({src_layout}) -> {args.output} ({args.to})")
    if needed:
        opts = " ".join(f"--set {k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in needed.items())
        print(f"{src_layout}'s {args.arch} needs model options {needed}: the file fits {args.arch} built with {opts}")
    return 0


def _recipe_overrides(args) -> dict[str, Any]:
    ov = _overrides(args.set)
    for flag, key in (("data", "data.root"), ("source", "data.source"), ("epochs", "epochs"),
                      ("batch_size", "batch_size"), ("weights", "weights"), ("max_steps", "max_steps"),
                      ("workers", "data.workers")):
        v = getattr(args, flag, None)
        if v is not None:
            ov[key] = v
    if getattr(args, "data", None) and not getattr(args, "source", None):
        from .data import infer_source  # the source --data holds, or a one-line refusal
        ov["data.source"] = infer_source(args.data)
    if getattr(args, "freeze", None):
        ov["freeze"] = list(args.freeze)
    return ov


def cmd_train(args) -> int:
    from .training import load_recipe, train

    recipe = load_recipe(args.recipe, _recipe_overrides(args))
    hist = train(args.model, recipe, backend=args.backend, out=args.out, resume=args.resume,
                 progress=not args.no_progress)
    if hist.rank != 0:  # data-parallel workers: rank 0 reports
        return 0
    if hist.skipped:
        print(f"not loaded from {recipe.weights} (trained from onespec's init): {', '.join(hist.skipped)}")
    f = hist.final
    if f:
        print(f"{hist.backend}: {f['epoch'] + 1} epochs, {f['step']} steps; validation top-1 "
              f"{100 * f['val_acc']:.2f}% top-5 {100 * f['val_top5']:.2f}% loss {f['val_loss']:.4f}; "
              f"{f['images_per_s']:.0f} images/s")
    print(f"run: {hist.out} (metrics.jsonl, curves.png, checkpoints/)")
    return 0


def cmd_eval(args) -> int:
    from .training import evaluate, load_recipe

    recipe = load_recipe(args.recipe, _recipe_overrides(args))
    res = evaluate(args.model, args.weights or "", recipe, backend=args.backend, out=args.out,
                   weights_format=args.format)
    width = max(len(c) for c in res["classes"])
    print(f"{res['model']} in {res['backend']} on {res['samples']} {res['data']} samples: top-1 "
          f"{100 * res['top1']:.2f}%  top-5 {100 * res['top5']:.2f}%  loss {res['loss']:.4f}")
    for c in res["classes"]:
        print(f"  {c:<{width}}  {100 * res['per_class'][c]:6.2f}%  of {res['per_class_samples'][c]}")
    if args.out:
        print(f"wrote {os.path.join(args.out, 'eval.json')} and {os.path.join(args.out, 'confusion.png')}")
    return 0


def cmd_align(args) -> int:
    from .training.align import align

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    per: dict[str, dict] = {}
    for item in args.set_for or []:
        fw, sep, pair = item.partition(":")
        if not sep:
            raise OverrideError(f"--set-for {item!r} is not FRAMEWORK:KEY=VALUE")
        per.setdefault(fw, {}).update(_overrides([pair]))
    ov = _overrides(args.set)
    if args.weights:
        ov["weights"] = args.weights
    if args.data:
        ov["data.root"] = args.data
        from .data import infer_source  # the source --data holds, or a one-line refusal
        ov["data.source"] = args.source or infer_source(args.data)
    if args.source:
        ov["data.source"] = args.source
    rep = align(args.model, args.recipe, backends=backends, steps=args.steps, overrides=ov, per_backend=per,
                out=args.out)
    print(rep.table())
    print(f"wrote {os.path.join(args.out or 'align-' + rep.model, 'align.json')}, align.txt, align.png")
    return 0 if rep.ok else 1


def cmd_diff(args) -> int:
    from .conformance.diff import diff, replay

    if args.replay:
        ok, err = replay(args.replay, args.backend)
        print(f"{args.replay} in {args.backend}: relative error {err:.2e} vs the float64 reference: "
              + ("within tolerance" if ok else "MISMATCH reproduced"))
        return 0 if ok else 1
    if not args.model:
        raise OverrideError("onespec diff needs a MODEL (or --replay DIR)")
    from .training.engine import resolve_model
    spec = resolve_model(args.model, _overrides(args.set))
    state = None
    if args.weights:
        from .conformance.diff import DiffError
        from .convert import read_for
        state, skipped, missing, _ = read_for(spec, args.weights, here=args.backend)
        if skipped or missing:
            raise DiffError(f"{args.weights} does not fit {spec.name}: "
                            + ", ".join((skipped + missing)[:5]) + f" ({len(skipped + missing)} tensors)")
    if args.foreign:
        import importlib

        from .conformance.diff import DiffError, diff_foreign
        mod, _, fn = args.foreign.partition(":")
        try:
            net = getattr(importlib.import_module(mod), fn)()
        except (ImportError, AttributeError, ValueError) as err:
            raise DiffError(f"--foreign {args.foreign}: {err}") from None
        names = None
        if args.map:
            with open(args.map) as f:
                names = json.load(f)
            if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
                raise DiffError(f"{args.map}: a name map is a JSON object of canonical name -> its name")
        rep = diff_foreign(spec, net, args.backend, tensor_map=names, seed=args.seed)
        print(rep.table())
        return 0 if rep.ok else 1
    out = args.out or f"diff-{spec.name}-{args.backend}"
    rep = diff(spec, args.backend, state=state, seed=args.seed, mode=args.mode, backward=args.backward, out=out)
    print(rep.table())
    print(f"wrote {os.path.join(out, 'diff.json')} and diff.txt")
    return 0 if rep.ok else 1


def cmd_export(args) -> int:
    from .export import ExportError, check_destination, export
    from .training.engine import resolve_model

    check_destination(args.format, args.output)  # before the model and weights are read
    spec = resolve_model(args.model, _overrides(args.set))
    if args.weights:
        from .convert import read_for
        state, skipped, missing, _ = read_for(spec, args.weights, here="numpy")
        if skipped or missing:
            raise ExportError(f"{args.weights} does not fit {spec.name}: "
                              + ", ".join((skipped + missing)[:5]) + f" ({len(skipped + missing)} tensors)")
    else:
        from .weights import init_state
        state = init_state(spec, args.seed)
        print(f"note: no --weights: exporting {spec.name} with init_state(seed={args.seed}) weights", file=sys.stderr)
    rep = export(spec, state, args.format, args.output, fold=args.fold, check=not args.no_check, batch=args.batch,
                 opset=args.opset)
    print(rep.line())
    return 0


def cmd_bench(args) -> int:
    from .bench import DEFAULT_MODELS, run, table

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


def _run_args(p, evaluation: bool = False) -> None:
    p.add_argument("model", nargs="?", default=None,
                   help="zoo name, spec file (.json/.yaml) or module:function (default: the recipe's model)")
    p.add_argument("--recipe", help="recipe YAML (default: onespec's defaults, scikit-learn's digits)")
    p.add_argument("--backend", default="torch", choices=FRAMEWORKS)
    p.add_argument("--data", help="data folder / file (recipe data.root)")
    p.add_argument("--source", choices=["digits", "imagefolder", "cifar10", "mat"], help="recipe data.source")
    p.add_argument("--workers", type=int, help="data decoding processes (recipe data.workers)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="recipe field, dotted: optimizer.lr=0.01, epochs=3, overrides.width=0.5")
    if evaluation:
        p.add_argument("--weights", required=True, help="checkpoint: .pth, .pdparams, .ckpt, .npz (canonical)")
        p.add_argument("--format", choices=FORMATS, help="checkpoint format (default: from the extension)")
        p.add_argument("--out", help="folder for eval.json and confusion.png")
    else:
        p.add_argument("--weights", help="start from this checkpoint (a head of another shape is skipped)")
        p.add_argument("--freeze", nargs="+", metavar="PATH", help="node-path prefixes to keep fixed, e.g. features")
        p.add_argument("--epochs", type=int)
        p.add_argument("--max-steps", type=int, help="stop after this many steps (a smoke run)")
        p.add_argument("--out", help="run directory (default runs/MODEL-BACKEND)")
        p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="onespec", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="zoo models with params and MACs").set_defaults(fn=cmd_list)
    p = sub.add_parser("show", help="per-layer table of a model")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="analytics and the spec as JSON")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. --set num_classes=10")
    p.set_defaults(fn=cmd_show)
    sub.add_parser("schema", help="JSON Schema of ModelSpec").set_defaults(fn=cmd_schema)
    p = sub.add_parser("conformance", help="build every model in every framework and check it against the spec")
    p.add_argument("models", nargs="*", help="zoo names or glob patterns (default: all)")
    p.add_argument("--backends", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    p.add_argument("--json", metavar="PATH", help="write the report as JSON")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-static", action="store_true", help="skip torch.export / to_static / GRAPH_MODE runs")
    p.add_argument("--compile", choices=("all", "distinct", "none"), default="all",
                   help="which models' compiled programs (torch.export / to_static / GRAPH_MODE) run: all, none, or "
                        "distinct: the fewest models holding every op configuration of the selection")
    p.add_argument("--step", choices=("all", "distinct", "none"), default="all",
                   help="with --numerics: which models take the one-SGD-step comparison (as --compile)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for every selected model")
    p.add_argument("--small", action="store_true",
                   help="each model at the smallest input size (32-192) whose pools, adaptive pools and convs take "
                        "the same cases as at its default size (ceil-mode windows, 1x1 outputs, up/down sampling)")
    p.add_argument("--numerics", action="store_true",
                   help="also load init_state(spec, seed) everywhere, compare outputs with the numpy reference "
                        "and one SGD training step across frameworks")
    p.add_argument("--diff-dir", default="conformance-diff",
                   help="with --numerics: where onespec diff reports each numerical failure (default %(default)s)")
    p.add_argument("--no-diff", action="store_true", help="with --numerics: do not run onespec diff on failures")
    p.set_defaults(fn=cmd_conformance)
    p = sub.add_parser("convert", help="convert a checkpoint between torch, paddle, mindspore and canonical files, "
                                       "or import one from torchvision, timm, PaddleClas, MindCV or the MindSpore model zoo")
    p.add_argument("src")
    p.add_argument("--arch", required=True, help="zoo model name")
    p.add_argument("--from", dest="from_", choices=FORMATS,
                   help="source library or framework (a framework, or none: the framework from the extension and "
                        "the layout -- onespec's or a library's of that framework -- from the keys; onespec: "
                        "onespec's own names only; mindspore_zoo: the MindSpore model zoo's backbone + head)")
    p.add_argument("--to", required=True, choices=WRITABLE)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. num_classes=10")
    p.set_defaults(fn=cmd_convert)
    p = sub.add_parser("train", help="train or fine-tune a model in one framework from a recipe")
    _run_args(p)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("align", help="train N steps in several frameworks from the same state and batches; "
                                     "compare loss, gradient norm and parameters step by step")
    p.add_argument("model", nargs="?", default=None, help="zoo name, spec file or module:function")
    p.add_argument("--recipe", help="recipe YAML (default: the digits recipe); dropout is switched off")
    p.add_argument("--weights", help="start from this checkpoint instead of onespec's seeded init")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--backends", default=",".join(FRAMEWORKS), help="comma-separated; the first is the reference")
    p.add_argument("--data", help="recipe data.root")
    p.add_argument("--source", choices=["digits", "imagefolder", "cifar10", "mat"])
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="recipe field for every framework")
    p.add_argument("--set-for", action="append", metavar="FW:KEY=VALUE",
                   help="recipe field for one framework, e.g. paddle:optimizer.weight_decay=0.001")
    p.add_argument("--out", help="report folder (default align-MODEL)")
    p.set_defaults(fn=cmd_align)
    p = sub.add_parser("diff", help="the first node whose output differs from the float64 reference, with a "
                                    "one-node reproducer")
    p.add_argument("model", nargs="?", help="zoo name, spec file (.json/.yaml) or module:function")
    p.add_argument("--backend", default="paddle", choices=FRAMEWORKS)
    p.add_argument("--weights", help="the state to compare with (default: init_state(spec, seed)); any format "
                                     "onespec convert reads, fitting the model exactly")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model override, e.g. input_size=64")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for diff.json, diff.txt and the reproducer")
    p.add_argument("--replay", metavar="DIR", help="run a reproducer written by onespec diff")
    p.add_argument("--mode", choices=("eval", "train"), default="eval",
                   help="forward in eval mode (numpy float64 reference) or train mode (batch statistics, running-"
                        "statistics updates; torch float64 reference)")
    p.add_argument("--backward", action="store_true",
                   help="also compare every node's input and parameter gradients (torch float64 autograd reference)")
    p.add_argument("--foreign", metavar="MODULE:FUNCTION",
                   help="compare your own network instead (a function returning it, weights loaded) node by node")
    p.add_argument("--map", metavar="JSON", help="with --foreign: canonical tensor name -> your network's name "
                                                 "(default: the model's torchvision names)")
    p.set_defaults(fn=cmd_diff)
    p = sub.add_parser("export", help="a deployable artifact (ONNX, MindIR, Paddle inference, torch .pt2), checked "
                                      "by running it in its runtime against the numpy reference")
    p.add_argument("model", help="zoo name, spec file (.json/.yaml) or module:function")
    p.add_argument("--weights", help="checkpoint (any format onespec convert reads) fitting the model exactly")
    p.add_argument("--format", required=True, choices=("onnx", "onnx-paddle", "mindir", "paddle", "torch-export"),
                   help="onnx: from torch; onnx-paddle: from paddle via paddle2onnx; mindir: MindSpore; paddle: "
                        "Paddle inference model (OUT.json + OUT.pdiparams); torch-export: ExportedProgram (.pt2)")
    p.add_argument("-o", "--output", required=True, help="artifact path (for --format paddle: a path prefix)")
    p.add_argument("--fold", action="store_true", help="export the BN-folded form (onespec.fold)")
    p.add_argument("--no-check", action="store_true", help="do not run the artifact in its runtime")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default %(default)s)")
    p.add_argument("--batch", type=int, default=2, help="batch the artifact is traced and checked with")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="model override, e.g. num_classes=10")
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser("bench", help="onespec's networks against the framework's own zoo models, side by side")
    p.add_argument("models", nargs="*", help="zoo names (default: mobilenet_v2 mobilenet_v3_large shufflenet_v2_x1_0 "
                                             "squeezenet1_1 resnet50 vgg11)")
    p.add_argument("--backends", nargs="+", default=["torch", "paddle"], choices=FRAMEWORKS)
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
    from .capture.command import add_parser as add_capture
    add_capture(sub)
    p = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion matrix of a checkpoint")
    _run_args(p, evaluation=True)
    p.set_defaults(fn=cmd_eval)
    from .codegen.commands import add_parsers
    add_parsers(sub, _overrides)
    for name in ("conformance", "train", "eval", "align", "diff"):  # the numerics switches, recorded in reports
        p = sub.choices[name]
        p.add_argument("--tf32", choices=("on", "off"),
                       help="allow TF32 matmul/conv on GPU (torch); recorded in the report's environment")
        p.add_argument("--deterministic", action="store_true",
                       help="deterministic kernels (torch cuDNN and algorithms, Paddle FLAGS_cudnn_deterministic, "
                            "MindSpore deterministic); recorded in the report's environment")
    for p in sub.choices.values():
        p.add_argument("--verbose", action="store_true", help="show the frameworks' own logs and warnings "
                                                              "(also ONESPEC_VERBOSE=1)")
    return ap


def main(argv=None) -> int:
    """User errors print one line (``onespec: error: ...``) and exit 2, never a traceback;
    SIGTERM ends a run like Ctrl-C, cleaning up its children and temporary files."""
    from ._proc import exit_on_sigterm

    exit_on_sigterm()
    args = parser().parse_args(argv)
    if args.verbose:  # before any framework loads, here or in a child
        os.environ[VERBOSE_ENV] = "1"
    if getattr(args, "tf32", None) or getattr(args, "deterministic", False):
        from .environment import set_flags
        set_flags(tf32=None if args.tf32 is None else args.tf32 == "on", deterministic=args.deterministic or None)
    try:
        return args.fn(args)
    except BrokenPipeError:  # `onespec list | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OnespecError, ValueError, OSError) as err:
        print(f"onespec: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("onespec: interrupted", file=sys.stderr)
        return 130


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    if isinstance(err, FileNotFoundError) and err.filename and not isinstance(err, OnespecError):
        text = f"no such file: {err.filename}"
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())


if __name__ == "__main__":
    raise SystemExit(main())
