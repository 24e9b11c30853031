"""One reader for the YAML documents users hand onespec (recipes, spec files): plain data only.

PyYAML's ``SafeLoader`` builds no Python objects, but it accepts two things a hostile or
mistaken file uses: a key given twice (the last silently wins, so ``epochs: 5`` ... ``epochs:
500`` trains 500 epochs) and aliases (``*name``), whose nested expansion turns a few hundred
bytes into gigabytes ("billion laughs"). Both are refused here, naming the file and line.
"""
from __future__ import annotations

import os

import yaml

from .errors import MissingFileError, OnespecError

MAX_BYTES = 16 << 20


class YamlError(OnespecError, ValueError):
    """A YAML document cannot be read as plain data; names the file (and line)."""


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` refusing duplicate keys and aliases."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"alias *{event.anchor} is not accepted (write the value out)", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                dup = key in seen
            except TypeError:  # an unhashable key: SafeLoader reports it
                break
            if dup:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise YamlError(f"{where}: not UTF-8 text (byte {err.start}: {data[err.start:err.start + 1]!r})") from None


def parse(text: str | bytes, where: str = "document"):
    """Plain data (dicts, lists, strings, numbers, booleans, None) from YAML ``text``."""
    if len(text) > MAX_BYTES:
        raise YamlError(f"{where}: {len(text):,} bytes exceeds the {MAX_BYTES >> 20} MiB budget")
    if isinstance(text, bytes):
        text = _decode(text, where)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise YamlError(f"{where}:{at}: not valid YAML ({problem})") from None
    except RecursionError:
        raise YamlError(f"{where}: YAML nested too deeply") from None


def read(path: str, what: str = "file"):
    """``parse`` of the file at ``path``, its size checked before it is read."""
    if not os.path.isfile(path):
        raise MissingFileError(path, f"no such {what}")
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        raise YamlError(f"{path}: {size:,} bytes exceeds the {MAX_BYTES >> 20} MiB budget of a {what}")
    with open(path, "rb") as f:
        return parse(f.read(MAX_BYTES + 1), path)
