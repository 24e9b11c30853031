"""The numpy backend has no autograd; it runs the optimizer rules as their float64 reference
(``onespec.training.optim``) and cannot train a network."""
from __future__ import annotations

import numpy as np

from ...errors import OnespecError


class Session:
    sqrt = staticmethod(np.sqrt)
    zeros_like = staticmethod(np.zeros_like)

    def __init__(self, net, spec, trainable, frozen_paths):
        raise OnespecError("the numpy backend is the float64 reference and has no autograd: "
                           "train with --backend torch, paddle or mindspore")
