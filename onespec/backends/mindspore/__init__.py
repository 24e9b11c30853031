"""MindSpore backend (PYNATIVE and GRAPH_MODE)."""
from .emit import build
from .runtime import count, forward, static_forward

__all__ = ["build", "count", "forward", "static_forward"]
