"""MindSpore backend (PYNATIVE and GRAPH_MODE)."""
from .emit import build
from .runtime import count, forward, param_names, static_forward

__all__ = ["build", "count", "forward", "param_names", "static_forward"]
