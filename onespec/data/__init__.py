"""Framework-neutral data: sources decoded by Pillow, augmentation in numpy, deterministic
batches (``Loader``) that every framework receives bit for bit."""
from .loader import Loader, digest, make_batch
from .sources import DataError, Source, cifar10, decode, digits, image_folder, infer_source, mat_cube, stratified_split
from .transforms import (CenterCrop, HorizontalFlip, Normalize, RandomCrop, RandomResizedCrop, Resize,
                         Transform, apply)

__all__ = ["Loader", "digest", "make_batch", "DataError", "Source", "cifar10", "decode", "digits",
           "image_folder", "infer_source", "mat_cube", "stratified_split", "CenterCrop", "HorizontalFlip", "Normalize",
           "RandomCrop", "RandomResizedCrop", "Resize", "Transform", "apply"]
