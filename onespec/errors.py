"""Exceptions raised by onespec. Every message names *what* is wrong and *where*."""
from __future__ import annotations


class OnespecError(Exception):
    """Base class of onespec's own errors."""


class SpecError(OnespecError, ValueError):
    """A spec breaks a structural rule.

    ``path`` is the dotted node path (``features.fire2.squeeze``) and ``rule`` a short
    stable rule id (``groups``, ``channels``, ``empty``, ...) that tests and tools can match.
    """

    def __init__(self, path: str, rule: str, message: str):
        self.path = path or "<root>"
        self.rule = rule
        self.detail = message
        super().__init__(f"{self.path}: [{rule}] {message}")


class UnknownModelError(OnespecError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class OverrideError(OnespecError, ValueError):
    """A ``get_spec`` override is not accepted by the model, or has a bad value."""


class BackendUnavailableError(OnespecError, ImportError):
    """A framework backend cannot be loaded (not installed, or import-order clash)."""


class MissingFileError(OnespecError, FileNotFoundError):
    """A file onespec was asked to read does not exist (also a ``FileNotFoundError``)."""

    def __init__(self, path: str, what: str = "no such file"):
        super().__init__(2, f"{what}: {path}", path)

    def __str__(self) -> str:
        return self.strerror


def validation_message(err) -> str:
    """One line from a pydantic ``ValidationError``: its first error's location and message."""
    errors = err.errors() if hasattr(err, "errors") else []
    if not errors:
        return str(err).splitlines()[0]
    first = errors[0]
    msg = str(first.get("msg", "")).removeprefix("Value error, ")
    loc = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return (f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg) + more
