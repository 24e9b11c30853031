"""``onespec`` command line: list, show, schema, conformance. A thin layer over the library."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from . import analyze, get_spec, list_models
from .errors import OverrideError
from .backends import FRAMEWORKS
from .convert import FORMATS, WRITABLE
from .errors import OnespecError
from .spec import ModelSpec
from .zoo import entry


def _value(text: str) -> Any:
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
    report = run(models, args.backends, batch=args.batch, seed=args.seed, static=not args.no_static,
                 overrides=overrides, numerics=args.numerics, small=args.small, progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(report.table())
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report.to_dict(), f, indent=1)
        os.replace(tmp, args.json)  # never leave a half-written report
    return 0 if report.ok else 1


def cmd_convert(args) -> int:
    from .convert import convert

    src_fmt = convert(args.src, args.arch, args.to, args.output, args.from_, _overrides(args.set))
    print(f"{args.src} ({src_fmt}) -> {args.output} ({args.to})")
    return 0


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
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override for every selected model")
    p.add_argument("--small", action="store_true",
                   help="each model at the smallest input size (32-192) whose pools, adaptive pools and convs take "
                        "the same cases as at its default size (ceil-mode windows, 1x1 outputs, up/down sampling)")
    p.add_argument("--numerics", action="store_true",
                   help="also load init_state(spec, seed) everywhere, compare outputs with the numpy reference "
                        "and one SGD training step across frameworks")
    p.set_defaults(fn=cmd_conformance)
    p = sub.add_parser("convert", help="convert a checkpoint between torch, paddle, mindspore, canonical, torchvision")
    p.add_argument("src")
    p.add_argument("--arch", required=True, help="zoo model name")
    p.add_argument("--from", dest="from_", choices=FORMATS,
                   help="source format (default: from the extension; .pth may hold onespec or torchvision names)")
    p.add_argument("--to", required=True, choices=WRITABLE)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. num_classes=10")
    p.set_defaults(fn=cmd_convert)
    return ap


def main(argv=None) -> int:
    """User errors print one line (``onespec: error: ...``) and exit 2, never a traceback;
    SIGTERM ends a run like Ctrl-C, cleaning up its children and temporary files."""
    from ._proc import exit_on_sigterm

    exit_on_sigterm()
    args = parser().parse_args(argv)
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
