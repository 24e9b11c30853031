"""``train``, ``eval`` and ``align``: the commands that read a recipe."""
from __future__ import annotations

import os
from typing import Any

from ..errors import OverrideError
from .common import MODEL_HELP, add_recipe_set, add_set, key_values, model_sets

SOURCES = ["digits", "imagefolder", "cifar10", "mat"]


def model_ref(args):
    """The command line's model (None: the recipe's) with its ``--set`` options."""
    from ..models import ModelRef

    sets = model_sets(args.set, recipe=True)
    return ModelRef(args.model, sets, "--set") if sets else args.model


def recipe_sets(args) -> dict[str, Any]:
    """``--recipe-set`` fields and the shortcut flags (``--epochs`` is ``--recipe-set epochs=``)."""
    ov = key_values(args.recipe_set, "--recipe-set")
    for flag, key in (("data", "data.root"), ("source", "data.source"), ("epochs", "epochs"),
                      ("batch_size", "batch_size"), ("weights", "weights"), ("max_steps", "max_steps"),
                      ("workers", "data.workers")):
        v = getattr(args, flag, None)
        if v is not None:
            ov[key] = v
    if getattr(args, "data", None) and not getattr(args, "source", None):
        from ..data import infer_source  # the source --data holds, or a one-line refusal
        ov["data.source"] = infer_source(args.data)
    if getattr(args, "freeze", None):
        ov["freeze"] = list(args.freeze)
    return ov


def cmd_train(args) -> int:
    from ..training import load_recipe, train

    recipe = load_recipe(args.recipe, recipe_sets(args))
    hist = train(model_ref(args), recipe, backend=args.backend, out=args.out, resume=args.resume,
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
    from ..training import evaluate, load_recipe

    recipe = load_recipe(args.recipe, recipe_sets(args))
    res = evaluate(model_ref(args), args.weights or "", recipe, backend=args.backend, out=args.out,
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
    from ..training.align import align

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    per: dict[str, dict] = {}
    for item in args.recipe_set_for or []:
        fw, sep, pair = item.partition(":")
        if not sep:
            raise OverrideError(f"--recipe-set-for {item!r} is not FRAMEWORK:FIELD=VALUE")
        per.setdefault(fw, {}).update(key_values([pair], "--recipe-set-for"))
    rep = align(model_ref(args), args.recipe, backends=backends, steps=args.steps, overrides=recipe_sets(args),
                per_backend=per, out=args.out)
    print(rep.table())
    print(f"wrote {os.path.join(args.out or 'align-' + rep.model, 'align.json')}, align.txt, align.png")
    return 0 if rep.ok else 1


def _common(p, default_recipe: str) -> None:
    p.add_argument("model", nargs="?", default=None, help=MODEL_HELP + " (default: the recipe's model)")
    p.add_argument("--recipe", help=f"recipe YAML (default: {default_recipe})")
    p.add_argument("--data", help="data folder / file (recipe data.root)")
    p.add_argument("--source", choices=SOURCES, help="recipe data.source")
    add_set(p)
    add_recipe_set(p)


def _run_args(p, frameworks, evaluation: bool = False) -> None:
    _common(p, "onespec's defaults, scikit-learn's digits")
    p.add_argument("--backend", default="torch", choices=frameworks)
    p.add_argument("--workers", type=int, help="data decoding processes (recipe data.workers)")
    p.add_argument("--batch-size", type=int)
    if evaluation:
        from ..convert import FORMATS
        p.add_argument("--weights", required=True, help="checkpoint: .pth, .pdparams, .ckpt, .npz (canonical)")
        p.add_argument("--format", choices=FORMATS, help="checkpoint format (default: from the extension)")
        p.add_argument("--out", help="folder for eval.json and confusion.png")
        return
    p.add_argument("--weights", help="start from this checkpoint (a head of another shape is skipped)")
    p.add_argument("--freeze", nargs="+", metavar="PATH", help="node-path prefixes to keep fixed, e.g. features")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int, help="stop after this many steps (a smoke run)")
    p.add_argument("--out", help="run directory (default runs/MODEL-BACKEND)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last epoch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(sub, frameworks) -> None:
    p = sub.add_parser("train", help="train or fine-tune a model in one framework from a recipe")
    _run_args(p, frameworks)
    p.set_defaults(fn=cmd_train)
    p = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion matrix of a checkpoint")
    _run_args(p, frameworks, evaluation=True)
    p.set_defaults(fn=cmd_eval)
    p = sub.add_parser("align", help="train N steps in several frameworks from the same state and batches; "
                                     "compare loss, gradient norm and parameters step by step")
    _common(p, "the digits recipe; dropout is switched off")
    p.add_argument("--weights", help="start from this checkpoint instead of onespec's seeded init")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--backends", default=",".join(frameworks), help="comma-separated; the first is the reference")
    p.add_argument("--recipe-set-for", action="append", metavar="FW:FIELD=VALUE",
                   help="recipe field for one framework, e.g. paddle:optimizer.weight_decay=0.001")
    p.add_argument("--out", help="report folder (default align-MODEL)")
    p.set_defaults(fn=cmd_align)
