"""PyTorch backend."""
from .emit import build, speed_options
from .runtime import count, forward, node_io, node_vjp, param_names, run_node, static_forward, train_step
from .weights import get_state, load, load_state, native_names, read, save

__all__ = ["build", "count", "forward", "get_state", "load", "load_state", "native_names", "node_io", "node_vjp", "param_names", "read", "save", "speed_options",
           "static_forward", "train_step"]
