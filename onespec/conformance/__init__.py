"""Conformance: prove the torch, paddle and mindspore builds of every zoo model match the spec."""
from .runner import Report, run, select

__all__ = ["Report", "run", "select"]
