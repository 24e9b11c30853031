"""``onespec`` command line: list, show, schema, conformance, convert, train, eval, align, diff, export, bench,
capture, codegen, port. A thin layer over the library, one module per subcommand (or per small group).

A model is a zoo name, a spec file or ``module:function`` in every command (``onespec.models``);
``--set KEY=VALUE`` is a model option everywhere, ``--recipe-set FIELD=VALUE`` a recipe field."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import OnespecError
from . import bench, conformance, convert, diff, export, info, training


def _numerics_switches(p) -> None:
    """The numerics switches, recorded in reports."""
    p.add_argument("--tf32", choices=("on", "off"),
                   help="allow TF32 matmul/conv on GPU (torch); recorded in the report's environment")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels (torch cuDNN and algorithms, Paddle FLAGS_cudnn_deterministic, "
                        "MindSpore deterministic); recorded in the report's environment")


def parser() -> argparse.ArgumentParser:
    from ..backends import frameworks
    from ..capture.command import add_parser as add_capture
    from ..codegen.commands import add_parsers as add_codegen
    from .common import model_sets

    FRAMEWORKS = frameworks()  # built-in and registered (ONESPEC_BACKENDS)
    ap = argparse.ArgumentParser(prog="onespec", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    info.register(sub)
    conformance.register(sub, FRAMEWORKS)
    convert.register(sub)
    training.register(sub, FRAMEWORKS)
    diff.register(sub, FRAMEWORKS)
    export.register(sub)
    bench.register(sub, FRAMEWORKS)
    add_capture(sub)
    add_codegen(sub, model_sets)
    for name in ("conformance", "train", "eval", "align", "diff"):
        _numerics_switches(sub.choices[name])
    for p in sub.choices.values():
        p.add_argument("--verbose", action="store_true", help="show the frameworks' own logs and warnings "
                                                              "(also ONESPEC_VERBOSE=1)")
    return ap


def main(argv=None) -> int:
    """User errors print one line (``onespec: error: ...``) and exit 2, never a traceback;
    SIGTERM ends a run like Ctrl-C, cleaning up its children and temporary files."""
    from .._proc import exit_on_sigterm

    exit_on_sigterm()
    args = parser().parse_args(argv)
    if args.verbose:  # before any framework loads, here or in a child
        from ..backends import VERBOSE_ENV
        os.environ[VERBOSE_ENV] = "1"
    if getattr(args, "tf32", None) or getattr(args, "deterministic", False):
        from ..environment import set_flags
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
