"""A backend defined outside onespec, for the contract tests: the numpy evaluator under the name
``toy``, a framework with checkpoints of its own extension (``.toy``). Registered with
``ONESPEC_BACKENDS=toy=<this directory>``; nothing in onespec names it."""
import dataclasses

from onespec.backends import numpy as _numpy
from onespec.backends.numpy import *  # noqa: F401,F403  (the contract's functions)

FRAMEWORK = dataclasses.replace(_numpy.FRAMEWORK, name="toy", package="onespec", reference=False,
                                extensions=(".toy",))
