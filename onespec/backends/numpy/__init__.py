"""Pure-numpy reference evaluator (the numerical oracle; not a deployment target)."""
from .evaluate import Evaluator, forward

__all__ = ["Evaluator", "forward"]
