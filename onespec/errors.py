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
