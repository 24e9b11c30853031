"""The model zoo: one module per family; importing this package registers them all."""
from . import mobilenet, squeezenet, vgg  # noqa: F401  (registration side effects)
from .registry import entry, get_spec, list_models, register

__all__ = ["entry", "get_spec", "list_models", "register"]
