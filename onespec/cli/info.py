"""``list``, ``show`` and ``schema``: what the zoo holds, a model's layers, the spec's schema."""
from __future__ import annotations

import json

from .common import MODEL_HELP, add_set, fmt_shape, resolve


def cmd_list(args) -> int:
    from .. import analyze, list_models
    from ..zoo import entry

    rows = [("model", "params", "MACs", "description")]
    for name in list_models():
        a = analyze(name)
        rows.append((name, f"{a.params:,}", f"{a.macs / 1e6:,.1f}M", entry(name).summary))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]}")
    return 0


def cmd_show(args) -> int:
    from .. import analyze

    spec = resolve(args.name, args.set)
    a = analyze(spec)
    if args.json:
        print(json.dumps({**a.to_dict(), "spec": spec.model_dump(mode="json")}, indent=1))
        return 0
    print(f"{spec.name}  ({spec.meta.paper or spec.meta.family})  input {fmt_shape(spec.input_shape)}")
    rows = [("node", "op", "output", "params", "MACs")]
    for r in a.rows:
        rows.append(("  " * r.depth + r.path.rsplit(".", 1)[-1], r.op, fmt_shape(r.out_shape),
                     f"{r.params:,}" if r.params else "", f"{r.macs:,}" if r.macs else ""))
    w = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}  {r[4]:>{w[4]}}")
    print(f"total: {a.params:,} trainable params, {a.state:,} non-trainable state (BN running stats), "
          f"{a.macs:,} MACs ({a.macs / 1e6:,.1f}M), output {fmt_shape(a.output_shape)}")
    return 0


def cmd_schema(args) -> int:
    from ..spec import ModelSpec

    if args.validate:
        from ..models import load_spec
        for path in args.validate:
            spec = load_spec(path)
            print(f"{path}: valid, {spec.name} {fmt_shape(spec.input_shape)} -> {fmt_shape(spec.output_shape)}")
        return 0
    print(json.dumps(ModelSpec.model_json_schema(), indent=1))
    return 0


def register(sub) -> None:
    sub.add_parser("list", help="zoo models with params and MACs").set_defaults(fn=cmd_list)
    p = sub.add_parser("show", help="per-layer table of a model")
    p.add_argument("name", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--json", action="store_true", help="analytics and the spec as JSON")
    add_set(p)
    p.set_defaults(fn=cmd_show)
    p = sub.add_parser("schema", help="JSON Schema of ModelSpec, or --validate spec files against it")
    p.add_argument("--validate", nargs="+", metavar="SPEC_FILE",
                   help="check spec files (.json/.yaml/.yml): structure, names and every shape")
    p.set_defaults(fn=cmd_schema)
