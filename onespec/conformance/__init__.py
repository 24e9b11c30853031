"""Conformance: prove the torch, paddle and mindspore builds of every zoo model match the spec."""
from .runner import Report, run, run_specs, select

__all__ = ["Report", "run", "run_specs", "select"]
