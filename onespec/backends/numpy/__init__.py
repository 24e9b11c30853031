"""Pure-numpy reference evaluator (the numerical oracle; not a deployment target)."""
from .evaluate import Evaluator, calibrate, forward

__all__ = ["Evaluator", "calibrate", "forward"]
