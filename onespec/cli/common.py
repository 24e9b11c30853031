"""What the subcommands share: ``KEY=VALUE`` parsing, the two override flags and the model
argument.

One meaning per flag, in every command: ``--set KEY=VALUE`` is a *model* option (a zoo
builder's keyword such as ``num_classes=10``, or a ``module:function``'s keyword);
``--recipe-set FIELD=VALUE`` is a *recipe* field, dotted (``optimizer.lr=0.01``), in the
commands that read a recipe (train, eval, align).
"""
from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import OverrideError

MODEL_HELP = ("zoo name, spec file (.json/.yaml/.yml; docs/spec-format.md) or module:function "
              "(path/to/file.py:function; runs that code)")


class _Frameworks(argparse.Action):
    """``--backends torch paddle`` and ``--backends torch,paddle`` alike: every word split at
    commas, each checked against the choices."""

    def __call__(self, parser, namespace, values, option_string=None):
        names = [n.strip() for v in values for n in v.split(",") if n.strip()]
        bad = [n for n in names if n not in self.allowed]
        if bad or not names:
            parser.error(f"{option_string}: {', '.join(map(repr, bad)) or 'nothing given'}; choose from "
                         f"{', '.join(self.allowed)} (separated by spaces or commas)")
        setattr(namespace, self.dest, list(dict.fromkeys(names)))


def add_backends(p, allowed, default, help: str = "") -> None:
    """The ``--backends`` option: frameworks separated by spaces or commas."""
    action = type("Frameworks", (_Frameworks,), {"allowed": tuple(allowed)})
    p.add_argument("--backends", nargs="+", default=list(default), action=action, metavar="FW",
                   help=(help + "; " if help else "") + f"of {', '.join(allowed)}, separated by spaces or commas "
                        f"(default: {' '.join(default)})")


def value(text: str) -> Any:
    """A JSON value (``10``, ``0.25``, ``false``, ``[1, 2]``), Python's ``True`` / ``False``, or
    else the text itself (``same``)."""
    if text in ("True", "False"):
        return text == "True"
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def key_values(pairs: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """``{KEY: value}`` of ``KEY=VALUE`` strings (lists become tuples)."""
    out = {}
    for pair in pairs or []:
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise OverrideError(f"{flag} {pair!r} is not KEY=VALUE")
        v = value(val)
        out[key] = tuple(v) if isinstance(v, list) else v
    return out


def model_sets(pairs: list[str] | None, recipe: bool = False) -> dict[str, Any]:
    """The ``--set`` model options; a recipe field given there (dotted, or a field name in a
    command with a recipe) is refused, pointing at ``--recipe-set``."""
    out = key_values(pairs)
    for key, v in out.items():
        if recipe and ("." in key or _recipe_field(key)):
            raise OverrideError(f"--set {key}: --set takes model options (num_classes=10, width=0.5); {key} is a "
                                f"recipe field: --recipe-set {key}={json.dumps(v)}")
        if "." in key:
            raise OverrideError(f"--set {key}: --set takes model options (num_classes=10, width=0.5), never dotted; "
                                "recipe fields go in --recipe-set of train, eval and align")
    return out


def _recipe_field(key: str) -> bool:
    from ..training.recipe import Recipe
    return key in Recipe.model_fields and key not in ("overrides",)


def add_set(p, what: str = "model option, e.g. --set num_classes=10 (a zoo builder's or module:function's keyword)"):
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=what)


def add_recipe_set(p) -> None:
    p.add_argument("--recipe-set", action="append", metavar="FIELD=VALUE",
                   help="recipe field, dotted: optimizer.lr=0.01, epochs=3, data.workers=2")


def fmt_shape(s) -> str:
    return "x".join(map(str, s))


def resolve(model: str, pairs: list[str] | None):
    """The ``ModelSpec`` of a command-line model with its ``--set`` options."""
    from ..models import resolve as _resolve
    return _resolve(model, model_sets(pairs), origin="--set")
