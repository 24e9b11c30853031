"""The model zoo: one module per family; importing this package registers them all."""
from . import (  # noqa: F401  (registration side effects)
    hybridsn, micronet, mobilenet, mobilenetv3, resnet, shufflenet, squeezenet, vgg,
)
from .registry import Entry, Import, Reference, entry, get_spec, list_models, register

__all__ = ["Entry", "Import", "Reference", "entry", "get_spec", "list_models", "register"]
